"""CSRF protection of the console's forms and of the management API's calls authenticated by the console's
cookie. Bound to an application only when it serves (create_app): commands never import Flask-WTF."""
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
