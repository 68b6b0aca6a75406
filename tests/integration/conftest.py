"""Fixtures several integration modules share; pytest finds them here by name, so the modules need not
import them."""
from .api_support import manager, other_manager  # noqa: F401
from .test_cli import cli, instance  # noqa: F401
