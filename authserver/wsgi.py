"""The WSGI application gunicorn serves: `authserver.wsgi:app`."""
from . import create_app

app = create_app()
