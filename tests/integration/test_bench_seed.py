"""bench/seed_large.py (`bench/run.py --large`) fills a database of the current schema: it reads the
schema from the database, so a migration that drops or renames a column it writes must fail here, not
in the middle of a benchmark."""
from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path

SEED = Path(__file__).resolve().parents[2] / "bench" / "seed_large.py"


def test_the_large_seed_fills_an_initialised_database(tmp_path, sqlite_template):
    spec = importlib.util.spec_from_file_location("seed_large", SEED)
    assert spec is not None and spec.loader is not None
    seed_large = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed_large)
    instance = tmp_path / "instance"
    shutil.copytree(sqlite_template, instance)
    database = instance / "authserver.db"
    added = seed_large.seed(f"sqlite:///{database}", tokens=3000, clients=250, log=lambda _line: None)
    assert added["clients"] == 250 and added["access_tokens"] == 3000
    with sqlite3.connect(database) as conn:
        counts = {name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                  for name in ("organizations", "clients", "client_secrets", "access_tokens")}
    assert counts == {"organizations": added["organizations"], "clients": 250, "client_secrets": 250,
                      "access_tokens": 3000}
