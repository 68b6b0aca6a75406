"""Which schema revision this version needs, and which one a database is at, read without Alembic.

Importing Alembic (and Flask-Migrate, which brings Mako) costs a tenth of a second or more. `serve` on a
database already migrated (every restart), `init` run again and `config check` only need to compare two
strings: the newest migration's revision, read from the migration files, and the one in the database's
`alembic_version` table. Migrating stays Alembic's (`flask_migrate.upgrade`), and whenever the files are
not a simple chain of single-parent revisions, Alembic names the head here too.
"""
from __future__ import annotations

import functools
import re

from .config import MIGRATIONS_DIR

_REVISION = re.compile(r"""^revision\s*(?::[^=]+)?=\s*['"]([^'"]+)['"]\s*$""", re.MULTILINE)
_DOWN_REVISION = re.compile(r"""^down_revision\s*(?::[^=]+)?=\s*(?:['"]([^'"]+)['"]|(None))\s*$""", re.MULTILINE)


def _chain_head() -> str | None:
    """The revision no other migration names as its parent, or None if the files say anything else (a merge,
    a branch, a revision written another way): then Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1 or revision[0] in revisions:
            return None
        revisions.add(revision[0])
        if down[0][0]:
            parents.add(down[0][0])
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    return heads.pop()


@functools.cache
def head_revision() -> str:
    """The schema revision this version of the server needs (the newest migration's)."""
    head = _chain_head()
    if head is None:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(connection) -> str | None:
    """The revision the database's schema is at (Alembic's `alembic_version` table), or None for a database
    without one. A table holding several revisions (a branched history: never this server's) gives them all,
    comma-separated, which is not the head either."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ", ".join(sorted(versions)) or None


def is_current(connection) -> bool:
    """The database's schema is the one this version needs: nothing to migrate."""
    return current_revision(connection) == head_revision()
