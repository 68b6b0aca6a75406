from authserver.wsgi import app  # noqa: F401  (the application lives in the package)
