"""The feed's correctness, property style, against the emulator's own webhooks.

For several seeds and both settings of each of the emulator's unconfirmed behaviours (are computed
changes in other records reported? does a link change made from the other side modify a record?),
under both rate-limit models, 30+ random steps of every kind — edits of every writable type, adds,
deletes, link edits on both sides and through a self-link (with lookups, a rollup and a count over
it), edits of records others look up through the self-link, field rename/add/type change/delete,
table add/rename/delete, replaced attachments, and an 8-day jump of the service's clock that the
client's clock does not see — each followed by a feed snapshot and then a full listing of the same
store: the two hold the same record hashes (last-modified times and users included), the full
listing measures 0 records missed by the feed, and a gap in the payloads always falls back.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import requests

from snapstore.emulator import Emulator, generate_workspace
from snapstore.emulator.clock import ManualClock
from snapstore.emulator.generate import field_id_for
from snapstore.emulator.values import READ_ONLY_TYPES
from snapstore.feed import manage
from snapstore.feed.hints import feed_hints
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource, RetryPolicy
from snapstore.store import Store

FAST = RetryPolicy(max_retries=3, max_429=3, backoff=0.001, backoff_max=0.01)
KINDS = ["edit", "link", "add", "self_link", "rename_field", "delete", "self_target", "add_field", "link_inverse",
         "retype_field", "gap", "add_table", "attachments", "rename_table", "delete_field", "delete_table",
         "api_edit", "mixed"]
DAY = 86400
STEPS = 30


class World:
    """An emulator on a manual clock (limits off), a source, a store with the feed enabled."""

    def __init__(self, tmp_path, *, seed: int = 1, computed: bool = False, records: int = 60,
                 tables: int = 3, start: float = 1_780_000_000.0, inverse_modifies: bool = True,
                 rate_model: str | None = None, self_link_lookups: bool = False) -> None:
        ws = generate_workspace(seed=seed, bases=1, tables_per_base=tables, records_per_table=records,
                                attachment_share=0.05, link_share=0.5, comment_share=0.0,
                                self_link_lookups=self_link_lookups)
        self.clock = ManualClock(start)  # start=time.time() when the CLI (wall clock) drives snapshots
        self.lag = 0.0  # how far the client's clock is behind the service's (a jump it did not see)
        # rate limits on: every request takes 0.25 s of the manual clock, so no model can see 5 in a second
        limits = {"rate_limits": False} if rate_model is None else {"rate_model": rate_model, "latency": 0.25}
        self.emu = Emulator(ws, clock=self.clock, webhook_computed_changes=computed,
                            modified_by_inverse=inverse_modifies, **limits).start()
        self.base_id = ws.bases[0].id
        self.src = AirtableSource(self.emu.token, self.emu.url, rate_base=1e6, rate_token=1e6, penalty=0.0,
                                  policy=FAST, timeout=(5, 20))
        self.store = Store.open(tmp_path / "store", create=True)
        self.headers = {"Authorization": f"Bearer {self.emu.token}"}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now() - self.lag, UTC)

    def enable(self) -> list[dict]:
        return manage.enable(self.store, self.src, [{"id": self.base_id, "name": "b"}], now=self.now())

    def snap(self, *, src: AirtableSource | None = None, **opts):
        """A snapshot planned as the CLI plans it (the store's feed hints: no whoami, bases listing or
        schema request while every base is fed)."""
        src = src or self.src
        opts.setdefault("full_every", None)
        hints = feed_hints(self.store, full_every=opts["full_every"], changes=opts.get("changes", "auto"),
                           now=self.now())
        plan = plan_snapshot(src, feed=hints)
        return take_snapshot(self.store, src, plan, SnapshotOptions(attachments=False, now=self.now, **opts))

    def close(self) -> None:
        self.src.close()
        self.emu.stop()

    # -- writes through the API
    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.emu.url}/v0/{path}", json=body, headers=self.headers, timeout=20)
        assert r.status_code == 200, r.text
        return r.json()

    @property
    def base(self):
        return self.emu.workspace.base(self.base_id)

    def hook_id(self) -> str:
        (h,) = self.emu.webhooks.hooks(self.base_id)
        return h["id"]


def hashes(store, info) -> dict:
    out = {}
    for b in info.bases:
        for t in b.tables:
            tbl = store.record_hashes(info, b.base_id, t.table_id)
            out[t.table_id] = dict(zip(tbl.column("record_id").to_pylist(), tbl.column("hash").to_pylist(),
                                       strict=True))
    return out


def feed_of(result, base_id) -> dict:
    return next(f for f in result.feed if f["base_id"] == base_id)


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
    elif kind == "self_link":  # a self-link (one-sided: no inverse cell) set through the API
        t0 = tables[0]
        rel = t0.fields_by_id.get(field_id_for(t0.id, "Related"))  # by id: a step may have renamed it
        if rel is None or len(t0.records) < 2:
            return step(w, "link", rng, n)
        rid = rng.choice(sorted(t0.records))
        links = rng.sample(sorted(x for x in t0.records if x != rid), min(len(t0.records) - 1, rng.randint(0, 3)))
        w.api("PATCH", f"{w.base_id}/{t0.id}", {"records": [{"id": rid, "fields": {rel["id"]: links}}]})
        return f"self-link {rid} -> {links}"
    elif kind == "self_target":  # a record others look up through the self-link: their lookups follow
        t0 = tables[0]
        rel = t0.fields_by_id.get(field_id_for(t0.id, "Related"))
        held = sorted({x for r in t0.records.values() for x in r.cells.get(rel["id"], ())}) if rel else []
        if not held:
            return step(w, "self_link", rng, n)
        rid = rng.choice(held)
        cells = {t0.primary_field_id: f"target {n}"}
        qty = field_id_for(t0.id, "Quantity")
        if t0.fields_by_id.get(qty, {}).get("type") == "number":  # not deleted or retyped by a step
            cells[qty] = rng.randint(1, 99)
        w.api("PATCH", f"{w.base_id}/{t0.id}", {"records": [{"id": rid, "fields": cells}]})
        return f"self-link target {rid} edited"
    elif kind == "gap":  # the service's clock jumps 8 days (the client's does not): payloads are gone
        emu.churn(seed=n, **{**none, "edit_share": 0.04})
        w.clock.advance(5 * DAY)
        w.api("POST", f"bases/{w.base_id}/webhooks/{w.hook_id()}/refresh")  # alive, nobody read it
        w.clock.advance(3 * DAY)
        w.lag += 8 * DAY
        return "gap"
    elif kind == "mixed":  # link edits on both sides with plain edits, in one action and through the API
        emu.churn(seed=n, link_edits=4, **{**none, "edit_share": 0.03})
        step(w, "link_inverse", rng, n)
        return step(w, "api_edit", rng, n)
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


@pytest.mark.parametrize(("seed", "computed", "inverse", "model"), [
    (1, False, True, None), (2, True, False, "window"), (3, False, False, "bucket"), (4, True, True, "bucket")],
    ids=["1-unreported-inverse_modifies", "2-reported-inverse_silent-window", "3-unreported-inverse_silent-bucket",
         "4-reported-inverse_modifies-bucket"])
def test_feed_snapshot_equals_full_listing_after_every_step(tmp_path, seed, computed, inverse, model):
    w = World(tmp_path, seed=seed, computed=computed, inverse_modifies=inverse, rate_model=model,
              self_link_lookups=True)
    try:
        assert w.enable()[0]["ok"]
        w.snap()  # the baseline: a full listing after the hook exists
        rng = random.Random(seed)
        kinds = list(KINDS)
        modes, self_knock = [], 0
        for n in range(STEPS):
            kind = kinds[n % len(kinds)] if n < len(kinds) else rng.choice(kinds)
            what = step(w, kind, rng, 100 * seed + n) or kind
            w.clock.advance(3600)
            fed = w.snap()
            f = feed_of(fed, w.base_id)
            modes.append(f["mode"])
            if kind == "gap":  # a detectable gap always falls back to a full listing
                assert f["mode"] == "full" and "gap cannot be proven empty" in f["reason"], (n, f)
            if kind == "self_target":
                self_knock += f["reread_knockon"]
            full = w.snap(changes="full")
            g = feed_of(full, w.base_id)
            assert fed.exit_code == 0 and full.exit_code == 0, (n, what, fed.errors, full.errors)
            assert hashes(w.store, fed.info) == hashes(w.store, full.info), (n, what, f)
            assert g["missed"] == 0, (n, what, g)
        assert modes.count("feed") >= STEPS * 2 // 3, modes  # the feed did the work, not fallbacks
        if not computed:  # unreported: the self-link's holders were found by the feed itself
            assert self_knock > 0
        assert w.emu.counters.snapshot()["total"]["429s"] == 0
    finally:
        w.close()
