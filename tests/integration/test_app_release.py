"""An application, once its context is gone and its engine disposed, is freed: nothing the token path
starts (the last-used recorder's thread, its engine listener, its exit hook) keeps it alive. Tests make
one application each, and a process that makes several must not keep them all."""
from __future__ import annotations

import gc
import weakref

from authserver.extensions import db
from authserver.services.app_services import app_services

from ..conftest import get_token, in_app_context, make_app, make_tenant


def test_an_application_that_issued_tokens_is_freed_after_its_end(tmp_path, sqlite_template):
    app = make_app(tmp_path, sqlite_template)
    with in_app_context(app):
        tenant = make_tenant()
        get_token(app.test_client(), tenant)
        recorder = app_services().last_used
        assert recorder.pending() == 1  # the secret's first use: the recorder (and its thread) started
        engine = db.engine
    gone = weakref.ref(app)
    del app, recorder, engine
    gc.collect()
    assert gone() is None, [type(r).__name__ for r in gc.get_referrers(gone())][:10]
