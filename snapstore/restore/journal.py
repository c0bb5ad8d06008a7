"""The SQLite journal of one restore or revert: what exists in the target, written before moving on."""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any


class RestoreJournal:
    """SQLite journal of one restore: what exists in the target and which step each table reached."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);
    CREATE TABLE IF NOT EXISTS tmap(src_table TEXT PRIMARY KEY, new_table TEXT, new_name TEXT);
    CREATE TABLE IF NOT EXISTS fmap(src_table TEXT, src_field TEXT, new_field TEXT,
                                    PRIMARY KEY(src_table, src_field));
    CREATE TABLE IF NOT EXISTS rmap(src_table TEXT, old_id TEXT, new_id TEXT, PRIMARY KEY(src_table, old_id));
    CREATE TABLE IF NOT EXISTS pending(src_table TEXT, step TEXT, payload TEXT, PRIMARY KEY(src_table, step));
    CREATE TABLE IF NOT EXISTS done(src_table TEXT, step TEXT, key TEXT, PRIMARY KEY(src_table, step, key));
    CREATE TABLE IF NOT EXISTS atts(src_table TEXT, old_rec TEXT, field TEXT, idx INTEGER, old_att TEXT,
                                    new_att TEXT, PRIMARY KEY(src_table, old_rec, field, idx));
    CREATE TABLE IF NOT EXISTS notes(kind TEXT, src_table TEXT, payload TEXT);
    CREATE TABLE IF NOT EXISTS cmap(src_table TEXT, old_id TEXT, new_id TEXT, PRIMARY KEY(src_table, old_id));
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(str(path), isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")  # one fsync per commit (of the log), not three
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(self.SCHEMA)

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def tx(self):
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # meta
    def get(self, k: str, default: Any = None) -> Any:
        row = self.con.execute("SELECT v FROM meta WHERE k = ?", [k]).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, k: str, v: Any) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [k, json.dumps(v)])

    # maps
    def table_map(self) -> dict[str, tuple[str, str]]:
        return {s: (n, nm) for s, n, nm in self.con.execute("SELECT src_table, new_table, new_name FROM tmap")}

    def field_map(self, src_table: str) -> dict[str, str]:
        return dict(self.con.execute("SELECT src_field, new_field FROM fmap WHERE src_table = ?", [src_table]))

    def record_map(self, src_table: str | None = None) -> dict[str, str]:
        if src_table is None:
            return dict(self.con.execute("SELECT old_id, new_id FROM rmap"))
        return dict(self.con.execute("SELECT old_id, new_id FROM rmap WHERE src_table = ?", [src_table]))

    def comment_map(self, src_table: str) -> dict[str, str]:
        return dict(self.con.execute("SELECT old_id, new_id FROM cmap WHERE src_table = ?", [src_table]))

    def map_comment(self, src_table: str, old_id: str, new_id: str) -> None:
        """A comment posted: journaled, and the intent row cleared, in one transaction."""
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO cmap VALUES (?, ?, ?)", [src_table, old_id, new_id])
            self.clear_pending(c, src_table, "comment")

    def done_keys(self, src_table: str, step: str) -> builtins.set[str]:  # `set` here is Journal.set
        return {k for (k,) in self.con.execute("SELECT key FROM done WHERE src_table = ? AND step = ?",
                                                [src_table, step])}

    def pending(self, src_table: str, step: str) -> Any:
        row = self.con.execute("SELECT payload FROM pending WHERE src_table = ? AND step = ?",
                               [src_table, step]).fetchone()
        return json.loads(row[0]) if row else None

    def set_pending(self, src_table: str, step: str, payload: Any) -> None:
        with self.tx() as c:
            c.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)", [src_table, step, json.dumps(payload)])

    def clear_pending(self, c, src_table: str, step: str) -> None:
        c.execute("DELETE FROM pending WHERE src_table = ? AND step = ?", [src_table, step])

    def note(self, kind: str, src_table: str, payload: dict) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO notes VALUES (?, ?, ?)", [kind, src_table, json.dumps(payload)])

    def notes(self, kind: str) -> list[dict]:
        return [dict(json.loads(p), table=t) for t, p in
                self.con.execute("SELECT src_table, payload FROM notes WHERE kind = ?", [kind])]


def journal_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]




def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
