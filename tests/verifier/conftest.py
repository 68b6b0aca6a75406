from __future__ import annotations

import pytest
from authserver_verifier import Verifier

from .local_issuer import AUDIENCE, FakeClock, LocalIssuer


@pytest.fixture
def issuer():
    server = LocalIssuer()
    server.add_key("rsa-1", "RS256")
    server.add_key("ec-1", "ES256")
    server.add_key("ed-1", "EdDSA")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_verifier(issuer, clock):
    def make(**options) -> Verifier:
        options.setdefault("timeout", 2.0)
        verifier = Verifier(options.pop("issuer", issuer.url), options.pop("audience", AUDIENCE), **options)
        verifier._monotonic = clock
        return verifier

    return make


@pytest.fixture
def verifier(make_verifier):
    return make_verifier()
