"""The live server the browser tests share; pytest finds it here by name."""
from .test_console_story import live_server  # noqa: F401
