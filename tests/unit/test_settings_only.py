"""Configuration enters through the settings (authserver/config.py) only: no other module of the package
reads the environment, except for the variables listed here with the reason."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "authserver"
SETTINGS_MODULE = PACKAGE_DIR / "config.py"
# Variables that are not settings of authserver, and the modules that may read them.
NOT_SETTINGS = {
    # prometheus_client's multiprocess mode, set by `authserver serve` for the gunicorn workers it starts.
    "PROMETHEUS_MULTIPROC_DIR": {"observability.py", "gunicorn_conf.py"},
}


def environment_reads(path: Path) -> list[tuple[int, str | None]]:
    """(line, variable name or None when not a literal) of each os.environ / os.getenv read."""
    reads = []
    tree = ast.parse(path.read_text(), str(path))
    stores = {id(node.value) for node in ast.walk(tree)
              if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if id(node) in stores:
                continue  # os.environ[...] = ...: handing configuration to a process it starts
            parent_call = next((call for call in ast.walk(tree) if isinstance(call, ast.Call)
                                and (call.func is node or getattr(call.func, "value", None) is node)), None)
            name = None
            if parent_call is not None and parent_call.args and isinstance(parent_call.args[0], ast.Constant):
                name = parent_call.args[0].value
            reads.append((node.lineno, name))
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            reads += [(node.lineno, None) for alias in node.names if alias.name in ("environ", "getenv")]
    return reads


def offending_reads(path: Path, package_dir: Path = PACKAGE_DIR) -> list[str]:
    relative = path.relative_to(package_dir).as_posix()
    return [f"authserver/{relative}:{line} reads the environment ({name or 'a computed name'}): "
            "add a setting to authserver/config.py and defaults.toml instead"
            for line, name in environment_reads(path)
            if relative not in NOT_SETTINGS.get(name, set())]


def test_only_the_settings_read_the_environment():
    modules = [path for path in sorted(PACKAGE_DIR.rglob("*.py")) if path != SETTINGS_MODULE]
    assert any(environment_reads(path) for path in modules)  # the scan sees reads at all
    found = [message for path in modules for message in offending_reads(path)]
    assert not found, "\n".join(found)


def test_a_read_outside_the_settings_is_named(tmp_path):
    module = tmp_path / "purger.py"
    module.write_text('import os\n\nINTERVAL = int(os.environ.get("AUTHSERVER_PURGE_INTERVAL", "3600"))\n'
                      'os.environ["AUTHSERVER_INSTANCE_PATH"] = "/srv"\n')
    assert offending_reads(module, tmp_path) == [
        "authserver/purger.py:3 reads the environment (AUTHSERVER_PURGE_INTERVAL): "
        "add a setting to authserver/config.py and defaults.toml instead"]
