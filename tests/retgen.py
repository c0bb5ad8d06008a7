"""A small store with history for retention, prune and verify tests: built once, copied per test.

Eight snapshots an hour apart (an accelerated clock patched into the writer), 300 records with
churn, deletions and additions, small attachments in packs and large ones as standalone objects —
one large attachment only the first snapshots reference (prunable), one every snapshot references.
"""

from __future__ import annotations

import io
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storegen import BASE, SCHEMA, TABLE, make_record, rid

import snapstore.store.writer as writer_mod
from snapstore.store import Store

T0 = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
FILES = "fldFILES000000001"
BIG = 600 * 1024


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def install(self):
        clock = self

        class FakeDateTime(datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.t

        orig = writer_mod.datetime
        writer_mod.datetime = FakeDateTime
        return orig


def _att(rng, size):
    return {"id": rid(rng, "att"), "url": "https://example.invalid/x", "filename": f"f{size}.bin",
            "size": size, "type": "application/octet-stream"}


def _payload(att_id: str, size: int) -> bytes:
    r = random.Random(att_id)
    return r.randbytes(size)


def take(store: Store, records: list[dict], clock: Clock, tags=()):
    orig = clock.install()
    try:
        snap = store.begin_snapshot(tags=tags)
        snap.add_base(BASE, "Test base", SCHEMA)
        tw = snap.table(BASE, TABLE)
        for r in records:
            tw.add(r)
        tw.finish()
        for r in records:
            for a in r["fields"].get(FILES, []):
                if not snap.known_attachment(a["id"]):
                    data = _payload(a["id"], a["size"])
                    snap.add_attachment(a["id"], io.BytesIO(data), size=len(data), filename=a["filename"])
        return snap.commit()
    finally:
        writer_mod.datetime = orig


def build(root: Path, n_snapshots: int = 8, n_records: int = 300, **init) -> list:
    store = Store.init(root, pack_size=64 * 1024, **init)
    store.backend.fsync = False
    rng = random.Random(7)
    recs = [make_record(rng, i) for i in range(n_records)]
    for r in recs:
        r["fields"].pop(FILES, None)
    for r in recs[:20]:
        r["fields"][FILES] = [_att(rng, rng.randint(50, 3000))]
    recs[0]["fields"][FILES] = [_att(rng, BIG)]  # deleted at snapshot 3: prunable once 1-3 are forgotten
    recs[1]["fields"][FILES] = [_att(rng, BIG + 1)]  # kept all along
    clock = Clock(T0)
    infos = []
    for i in range(n_snapshots):
        if i:
            for j in rng.sample(range(2, len(recs)), len(recs) // 10):
                recs[j] = dict(recs[j], fields=dict(recs[j]["fields"], fldNOTES000000001=f"edit {i} {j}"))
            if i == 3:
                recs = recs[1:]
            recs.append(make_record(rng, 1000 + i))
            recs[-1]["fields"].pop(FILES, None)
            if i % 2:
                recs[-1]["fields"][FILES] = [_att(rng, rng.randint(50, 3000))]
        infos.append(take(store, recs, clock))
        clock.t += timedelta(hours=1)
    return infos


_CACHE: dict[str, Path] = {}


def history_store(tmp_path_factory, tmp_path: Path, password: str | None = None,
                  format_version: int | None = None) -> tuple[Store, list]:
    """A fresh copy of the shared history store (encrypted with ``password`` if given; of the
    current format, or ``format_version``)."""
    kind = f"{'encrypted' if password else 'base'}-{format_version}"
    if kind not in _CACHE:
        base = tmp_path_factory.mktemp("history") / "store"
        build(base, password=password, **({"format_version": format_version} if format_version else {}))
        _CACHE[kind] = base
    dst = tmp_path / "store"
    shutil.copytree(_CACHE[kind], dst)
    store = Store.open(dst, password=password)
    store.backend.fsync = False
    return store, list(reversed(store.list_snapshots()))


def contents(store: Store, snap) -> list:
    """Everything a snapshot exports: its records, schema, and each named attachment's bytes (hashed)."""
    import hashlib

    from snapstore.store.reader import BlobReader

    recs = sorted(store.records(snap, BASE, TABLE), key=lambda r: r["id"])
    ids = sorted({a["id"] for r in recs for a in r["fields"].get(FILES, [])})
    with store.catalog.read() as con:
        rows = con.execute(
            """SELECT a.att_id, a.content_hash, p.name, b.off, b.clen, b.rlen, b.dict_hash FROM attachment a
               LEFT JOIN blob b ON b.hash = a.content_hash LEFT JOIN pack p ON p.pack_seq = b.pack_seq
               WHERE list_contains(?, a.att_id)""", [ids]).fetchall()
    reader = BlobReader(store)
    atts = {}
    for att_id, h, pack, off, clen, rlen, dh in rows:
        if pack is None:
            data = store._read_standalone(h)  # (opened, if the store is encrypted)
        else:
            data = reader.read(h, pack, off, clen, rlen, dh)
        atts[att_id] = hashlib.sha256(data).hexdigest()
    assert sorted(atts) == ids, "an attachment a record names is not in the store"
    return [recs, store.schema(snap, BASE), atts]
