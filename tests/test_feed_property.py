"""The feed's correctness, property style, against the emulator's own webhooks.

For several seeds and both settings of the emulator's unconfirmed behaviour (are computed changes in
other records reported?), 30+ random steps of every kind — edits of every writable type, adds,
deletes, link edits on both sides, field rename/add/type change/delete, table add/rename/delete,
replaced attachments — each followed by a feed snapshot and then a full listing of the same store:
the two hold the same record hashes, and the full listing measures 0 records missed by the feed.
"""

from __future__ import annotations

import random

import pytest

from snapstore.emulator.values import READ_ONLY_TYPES
from tests.helpers.feed_world import World, feed_of, hashes

KINDS = ["edit", "link", "add", "rename_field", "delete", "add_field", "link_inverse", "retype_field",
         "add_table", "attachments", "rename_table", "delete_field", "delete_table", "api_edit"]
STEPS = 30


def _link_fields(table, two_sided: bool):
    return [f for f in table.fields if f["type"] == "multipleRecordLinks"
            and bool((f.get("options") or {}).get("inverseLinkFieldId")) == two_sided]


def step(w: World, kind: str, rng: random.Random, n: int) -> str:
    """One random change of ``kind``; returns what it did (for failure messages)."""
    emu, base = w.emu, w.base
    tables = list(base.tables)
    t = rng.choice(tables)
    none = dict(edit_share=0.0, add_share=0.0, delete_share=0.0)
    if kind == "edit":
        emu.churn(seed=n, **{**none, "edit_share": 0.04})
    elif kind == "add":
        emu.churn(seed=n, **{**none, "add_share": 0.03})
    elif kind == "delete":
        emu.churn(seed=n, **{**none, "delete_share": 0.03})
    elif kind in ("link", "link_inverse"):
        cands = [(tb, f) for tb in tables for f in _link_fields(tb, two_sided=True) + _link_fields(tb, False)]
        if kind == "link_inverse":  # the other side of a two-sided link
            cands = [(base.table_by_id(f["options"]["linkedTableId"]),
                      base.table_by_id(f["options"]["linkedTableId"]).fields_by_id[f["options"]["inverseLinkFieldId"]])
                     for _tb, f in cands if f["options"].get("inverseLinkFieldId")] or cands
        if not cands or not any(tb.records for tb, _f in cands):
            return step(w, "edit", rng, n)
        tb, f = rng.choice([c for c in cands if c[0].records])
        target = base.table_by_id(f["options"]["linkedTableId"])
        rid = rng.choice(sorted(tb.records))
        links = rng.sample(sorted(target.records), min(len(target.records), rng.randint(0, 3)))
        w.api("PATCH", f"{w.base_id}/{tb.id}", {"records": [{"id": rid, "fields": {f["id"]: links}}]})
        return f"{kind} {tb.id}.{f['id']} of {rid} -> {links}"
    elif kind == "api_edit":  # several writable types of one record at once, through the API
        rid = rng.choice(sorted(t.records)) if t.records else None
        if rid is None:
            return step(w, "add", rng, n)
        cells = {}
        for f in t.fields:
            if f["type"] in ("singleLineText", "multilineText"):
                cells[f["id"]] = f"step {n} {rng.random():.6f}"
            elif f["type"] in ("number", "currency", "percent"):
                cells[f["id"]] = rng.randint(0, 1000)
            elif f["type"] == "checkbox":
                cells[f["id"]] = rng.random() < 0.5
        w.api("PATCH", f"{w.base_id}/{t.id}", {"records": [{"id": rid, "fields": cells}]})
        return f"api edit {t.id}/{rid}"
    elif kind == "rename_field":
        emu.churn(seed=n, rename_fields=1, **none)
    elif kind == "add_field":
        emu.churn(seed=n, add_fields=1, **none)
    elif kind == "rename_table":
        emu.churn(seed=n, rename_tables=1, **none)
    elif kind == "attachments":
        emu.churn(seed=n, replace_attachments=2, **none)
    elif kind == "retype_field":
        fs = [f for f in t.fields if f["type"] == "singleLineText" and f["id"] != t.primary_field_id]
        if not fs:
            return step(w, "edit", rng, n)
        f = rng.choice(fs)
        emu.change_field_type(w.base_id, t.id, f["id"], "multilineText")
        return f"retype {t.id}.{f['id']}"
    elif kind == "delete_field":
        fs = [f for f in t.fields if f["type"] not in READ_ONLY_TYPES and f["type"] != "multipleRecordLinks"
              and f["id"] != t.primary_field_id]
        if not fs:
            return step(w, "edit", rng, n)
        f = rng.choice(fs)
        emu.delete_field(w.base_id, t.id, f["id"])
        return f"delete field {t.id}.{f['id']} ({f['type']})"
    elif kind == "add_table":
        other = rng.choice(tables)
        doc = w.api("POST", f"meta/bases/{w.base_id}/tables", {"name": f"Added {n}", "fields": [
            {"name": "Name", "type": "singleLineText"},
            {"name": "Link", "type": "multipleRecordLinks", "options": {"linkedTableId": other.id}}]})
        link = next(f["id"] for f in doc["fields"] if f["name"] == "Link")
        targets = sorted(other.records)[:3]
        w.api("POST", f"{w.base_id}/{doc['id']}", {"records": [
            {"fields": {"Name": f"new {i}", link: targets[i:i + 1]}} for i in range(3)]})
        return f"add table {doc['id']} linked to {other.id}"
    elif kind == "delete_table":
        added = [tb for tb in tables if tb.name.startswith("Added")]
        victim = added[-1] if added else (tables[-1] if len(tables) > 2 else None)
        if victim is None:
            return step(w, "edit", rng, n)
        emu.delete_table(w.base_id, victim.id)
        return f"delete table {victim.id}"
    return kind


@pytest.mark.parametrize(("seed", "computed"), [(1, False), (2, True), (3, False), (4, True)],
                         ids=["1-unreported", "2-reported", "3-unreported", "4-reported"])
def test_feed_snapshot_equals_full_listing_after_every_step(tmp_path, seed, computed):
    w = World(tmp_path, seed=seed, computed=computed)
    try:
        assert w.enable()[0]["ok"]
        w.snap()  # the baseline: a full listing after the hook exists
        rng = random.Random(seed)
        kinds = list(KINDS)
        modes = []
        for n in range(STEPS):
            kind = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
            what = step(w, kind, rng, 100 * seed + n) or kind
            w.clock.advance(3600)
            fed = w.snap()
            f = feed_of(fed, w.base_id)
            modes.append(f["mode"])
            full = w.snap(changes="full")
            g = feed_of(full, w.base_id)
            assert fed.exit_code == 0 and full.exit_code == 0, (n, what, fed.errors, full.errors)
            assert hashes(w.store, fed.info) == hashes(w.store, full.info), (n, what, f)
            assert g["missed"] == 0, (n, what, g)
        assert modes.count("feed") >= STEPS * 2 // 3, modes  # the feed did the work, not fallbacks
    finally:
        w.close()
