"""Kept for commands written against the old layout: the settings live in authserver/gunicorn_conf.py."""
from authserver.gunicorn_conf import *  # noqa: F401,F403
