"""Shared by the restore tests: an emulator with a workspace and a store holding its first snapshot,
new empty target bases, and snapshots of a base (with or without comments)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from snapstore import restore as R
from snapstore.emulator import Emulator
from snapstore.emulator.state import Base
from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource
from snapstore.store import Store


def new_base(emu, name="Target") -> str:
    with emu.lock:
        b = Base(emu.workspace.new_id("app"), name, "create")
        emu.workspace.bases.append(b)
    return b.id


def snapshot(store, client, base_id, *, comments: bool = False):
    res = take_snapshot(store, client, plan_snapshot(client, Selection(bases=(base_id,))),
                        SnapshotOptions(comments=comments))
    assert res.status == "complete", res.to_dict()
    return store.resolve("latest")


@contextlib.contextmanager
def emulated(ws, tmp_path_factory, *, comments: bool = False):
    """{"emu", "client", "store", "snap", "base", "tmp"} for workspace ``ws``'s first base."""
    base = ws.bases[0].id
    with Emulator(ws, rate_limits=False) as emu:
        client = AirtableSource(emu.token, emu.url, rate_base=2000, rate_token=20000)
        store = Store.open(tmp_path_factory.mktemp("rs") / "store", create=True)
        snap = snapshot(store, client, base, comments=comments)
        try:
            yield {"emu": emu, "client": client, "store": store, "snap": snap, "base": base,
                   "tmp": tmp_path_factory.mktemp("work")}
        finally:
            client.close()


def assert_restored(store, src_snap, src_base, dst_snap, dst_base, id_map_file, client=None):
    """Every writable field of every record equal, ids mapped (the restored base read back by a snapshot,
    or by a plain listing when ``dst_snap`` is None)."""
    idmap = json.loads(Path(id_map_file).read_text())
    id_maps = {t: v["records"] for t, v in idmap.items()}
    schema = store.schema(src_snap, src_base)
    for t in schema["tables"]:
        m = idmap[t["id"]]
        if dst_snap is None:
            dst = [r for page in client.iter_pages(dst_base, m["new_table"]) for r in page]
        else:
            dst = list(store.records(dst_snap, dst_base, m["new_table"]))
        diffs = R.compare_tables(t, store.records(src_snap, src_base, t["id"]), dst, m["fields"], id_maps)
        assert diffs == [], (t["name"], diffs[:5])
        assert len(dst) == src_snap.table(src_base, t["id"]).records
