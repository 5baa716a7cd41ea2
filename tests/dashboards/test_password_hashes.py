"""Password hashes: argon2id at 19 MiB by default; a hash of argon2-cffi's 64 MiB default still logs in and
is made again at the new setting."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from argon2 import PasswordHasher
from argon2.low_level import Type

from dashboards.web.users import UserStore, default_hasher


def test_the_default_is_argon2id_at_19_mib_and_older_hashes_are_upgraded_at_login(tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    store = UserStore(db)
    try:
        assert (store.hasher.type, store.hasher.memory_cost, store.hasher.time_cost, store.hasher.parallelism) == (
            Type.ID, 19_456, 2, 1)
        store.add("wang", "operator", "correct horse battery", by="test")
        old = PasswordHasher()  # argon2-cffi's default: 64 MiB, 3 passes, 4 lanes
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE web_users SET password_hash = ? WHERE name = 'wang'",
                         (old.hash("correct horse battery"),))
        assert store.verify("wang", "wrong password") is None
        assert store.verify("wang", "correct horse battery") is not None
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT password_hash FROM web_users WHERE name = 'wang'").fetchone()[0]
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert not default_hasher().check_needs_rehash(stored)
        assert store.verify("wang", "correct horse battery") is not None
    finally:
        store.close()
