"""authserver's WSGI app behind a2wsgi, for uvicorn: `uvicorn --app-dir bench/slowclients asgi_app:app`.
A2WSGI_THREADS (default 8) is the size of the thread pool the WSGI app runs in, per worker process."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from a2wsgi import WSGIMiddleware  # noqa: E402
from wsgi import app as wsgi_app  # noqa: E402

app = WSGIMiddleware(wsgi_app, workers=int(os.environ.get("A2WSGI_THREADS", "8")))
