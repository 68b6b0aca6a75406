"""The import graph of authserver points down only (the layers are drawn in the README, "How the code is
laid out"). Every module's imports are read with `ast`, without importing anything."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "authserver"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / PACKAGE

# Bottom first. A module may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("clock", "config", "errors", "extensions", "models", "crypto", "outages", "lifecycle",
                    "logging_setup", "observability", "circuit")),
    ("storage and tokens", ("store", "checkpoint", "token_store", "replay", "ratelimit", "keyfetch", "last_used",
                            "access_tokens", "checks", "schema")),
    ("services", ("services",)),
    ("doors", ("oauth", "api", "console", "web", "csrf")),
    ("app factory", ("",)),  # authserver/__init__.py: create_app
    # The CLI is a door too, and the command line's entry point: it builds the app with the factory.
    ("entry points", ("cli", "wsgi", "gunicorn_conf", "sync_worker", "migrations")),
]
# The front doors never import one another: each calls the services.
DOORS = ("oauth", "api", "console", "cli")
# Below the doors nothing reads the request: what a rule needs is passed in.
REQUEST_FREE_LAYERS = ("foundation", "storage and tokens", "services")
FLASK_REQUEST = {"flask.request", "flask.globals.request"}


@dataclass(frozen=True)
class Edge:
    source: str  # dotted module that imports
    target: str  # dotted module (or module.attribute) imported
    line: int

    def __str__(self) -> str:
        path = self.source.replace(".", "/")
        path += "/__init__.py" if (PACKAGE_DIR.parent / path / "__init__.py").is_file() else ".py"
        return f"{path}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    relative = Path(*dotted.split(".")[1:]) if "." in dotted else Path()
    base = PACKAGE_DIR / relative
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> list[Edge]:
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges += [Edge(source, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                name = f"{target}.{alias.name}"
                if target.startswith(PACKAGE) and alias.name.startswith("__"):
                    continue  # package metadata (__version__), not code of the package's __init__
                edges.append(Edge(source, name if is_module(name) or target == "flask" else target, node.lineno))
    return edges


def package_modules() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def part_of(dotted: str) -> str | None:
    """The top-level part of authserver a module belongs to ("" for the package itself), or None outside it."""
    if dotted == PACKAGE:
        return ""
    if not dotted.startswith(PACKAGE + "."):
        return None
    return dotted.split(".")[1]


def layer_of(part: str) -> int:
    for index, (_, parts) in enumerate(LAYERS):
        if part in parts:
            return index
    raise AssertionError(f"authserver/{part} is in no layer: add it to LAYERS (and to the README's drawing)")


def violations(edges: list[Edge]) -> list[str]:
    found = []
    for edge in edges:
        source_part, target_part = part_of(edge.source), part_of(edge.target)
        source_layer = layer_of(source_part)
        if edge.target in FLASK_REQUEST and LAYERS[source_layer][0] in REQUEST_FREE_LAYERS:
            found.append(f"{edge}: the {LAYERS[source_layer][0]} layer must not read Flask's request")
        if target_part is None or target_part == source_part:
            continue
        target_layer = layer_of(target_part)
        if target_layer > source_layer:
            found.append(f"{edge}: upward, from {LAYERS[source_layer][0]} to {LAYERS[target_layer][0]}")
        elif source_part in DOORS and target_part in DOORS:
            found.append(f"{edge}: one front door imports another (both should call the services)")
    return found


def test_every_module_is_in_a_layer():
    for path in package_modules():
        layer_of(part_of(module_name(path)))


def test_imports_point_down_only():
    edges = [edge for path in package_modules() for edge in imports_of(path)]
    assert len(edges) > 100  # the walk found the package's imports at all
    found = violations(edges)
    assert not found, "imports against the layer order:\n" + "\n".join(found)


@pytest.mark.parametrize("source,target,complaint", [
    ("authserver.services.management", "authserver.oauth.tokens", "upward, from services to doors"),
    ("authserver.access_tokens", "authserver.services.common", "upward, from storage and tokens to services"),
    ("authserver.api.openapi", "authserver.console.views", "one front door imports another"),
    ("authserver.cli.secrets", "authserver.oauth.server", "one front door imports another"),
    ("authserver.services.sessions", "flask.request", "must not read Flask's request"),
])
def test_a_forbidden_import_is_named(source, target, complaint):
    (message,) = violations([Edge(source, target, 7)])
    assert message.startswith(f"{source.replace('.', '/')}.py:7 imports {target}: ") and complaint in message


def test_relative_imports_resolve_to_modules():
    edges = {edge.target for edge in imports_of(PACKAGE_DIR / "services" / "management.py")}
    assert "authserver.access_tokens" in edges and "authserver.services.accounts" in edges
    assert violations([Edge("authserver.oauth.grants", "authserver.services.apis", 1),
                       Edge("authserver.console.views", "flask.request", 1)]) == []
