"""docs/configuration.md is the generated reference of every setting, and it is current."""
from __future__ import annotations

from pathlib import Path

from authserver.config import _read_defaults, reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_configuration_reference_is_current():
    assert DOC.read_text() == reference_markdown(), "run: authserver config reference > docs/configuration.md"


def test_every_setting_is_documented_with_a_meaning():
    text = reference_markdown()
    for key in _read_defaults():
        row = next(line for line in text.splitlines() if line.startswith(f"| `AUTHSERVER_{key.upper()}` |"))
        variable, default, meaning = (cell.strip() for cell in row.strip().strip("|").split(" | "))
        assert default and meaning, key


def test_every_command_takes_json():
    """SPEC §6: every command takes --json (and then prints one JSON document on stdout)."""
    import click

    from authserver.cli import main

    def commands(group: click.Group, path: tuple[str, ...] = ()):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))
            else:
                yield (*path, name), command

    without = [" ".join(path) for path, command in commands(main)
               if not any("--json" in getattr(param, "opts", ()) for param in command.params)]
    assert without == []


def test_the_reference_as_json_lists_every_setting_in_order():
    import json

    from click.testing import CliRunner

    from authserver.cli import main

    result = CliRunner().invoke(main, ["config", "reference", "--json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    defaults = _read_defaults()
    assert [e["variable"] for e in entries] == [f"AUTHSERVER_{key.upper()}" for key in defaults]
    assert all(set(e) == {"variable", "default", "meaning"} and e["meaning"] for e in entries)
    assert {e["variable"]: e["default"] for e in entries}["AUTHSERVER_ISSUER"] == defaults["issuer"]
