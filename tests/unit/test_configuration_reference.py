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
        assert row.rstrip(" |").split("|")[-1].strip(), key
