"""Snapshots against the HTTP emulator with rate limits ON and its clock accelerated.

The client's throttle is configured to match (5*k requests/s per base, 50*k per token, a 30/k s
penalty for a clock running k times real time), so nothing waits for real and the shapes of
Airtable's limits are kept. k=10 where the limit must bind (the emulator answers faster than 50
requests/s per base), k=50 where penalties are expected (0.6 s each).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.ops.snapshot import EXIT_OK, EXIT_PARTIAL, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource, RetryPolicy
from snapstore.store import Store

SCALE = 50  # fault runs: a 429 costs 0.6 s
BINDING_SCALE = 10  # the throttle binds: the emulator answers faster than 50 requests/s per base
FAST_RETRY = RetryPolicy(max_retries=8, max_429=10, backoff=0.005, backoff_max=0.05)
# small on purpose: the store spends ~35 ms per new attachment (a catalog lookup), so keep them few
WS = dict(seed=0, bases=3, tables_per_base=2, records_per_table=120, attachment_share=0.04, comment_share=0.1)

#: field types whose values may change in a record nobody edited (links, lookups, formulas…)
DERIVED = {"multipleRecordLinks", "multipleLookupValues", "rollup", "count", "formula", "lastModifiedTime",
           "lastModifiedBy", "aiText"}


def make_source(emu: Emulator, *, factor: float = 1.0, **kw) -> AirtableSource:
    """A source whose throttle matches the emulator's accelerated limits (times ``factor``)."""
    scale = emu.clock.scale
    return AirtableSource(
        emu.token, emu.url, rate_base=emu.limiter.per_base * scale * factor,
        rate_token=emu.limiter.per_token * scale * factor, penalty=emu.limiter.penalty / scale,
        policy=kw.pop("policy", FAST_RETRY), timeout=(5, 10), **kw,
    )


def snap(store: Store, src: AirtableSource, **opts):
    plan = plan_snapshot(src)
    return take_snapshot(store, src, plan, SnapshotOptions(**opts))


def content(store: Store, info) -> dict:
    """Everything a snapshot holds, by content: record hashes per table, schemas, comments and the
    attachment files (content hashes) its records reference."""
    out: dict = {"records": {}, "schemas": {}, "comments": {}}
    for b in info.bases:
        out["schemas"][b.base_id] = store.schema(info, b.base_id)
        for t in b.tables:
            tbl = store.record_hashes(info, b.base_id, t.table_id)
            out["records"][t.table_id] = dict(zip(tbl.column("record_id").to_pylist(),
                                                  [h.hex() for h in tbl.column("hash").to_pylist()], strict=True))
            out["comments"][t.table_id] = store.comments(info, b.base_id, t.table_id)
    referenced = set()
    for b in info.bases:
        for t in b.tables:
            for rec in store.records(info, b.base_id, t.table_id):
                for v in rec["fields"].values():
                    if isinstance(v, list):
                        referenced |= {a["id"] for a in v if isinstance(a, dict) and str(a.get("id", "")).startswith("att")}
    with store.catalog.read() as con:  # one query rather than one per attachment
        stored = {a: h.hex() for a, h in con.execute("SELECT att_id, content_hash FROM attachment").fetchall()}
    atts = {a: stored.get(a) for a in referenced}
    out["attachments"] = atts
    return out


def oracle(emu: Emulator) -> dict:
    """What the emulator serves, read independently of snapstore's source (plain requests, rate
    limiter off): {table_id: {record_id: sha256 of the canonical record}} - the store's record hash."""
    import hashlib

    import requests

    from snapstore.canonical import record_bytes

    emu.limiter.enabled = False
    try:
        out = {}
        h = {"Authorization": f"Bearer {emu.token}"}
        for b in emu.workspace.bases:
            for t in b.tables:
                recs, offset = {}, None
                while True:
                    params = {"returnFieldsByFieldId": 1, **({"offset": offset} if offset else {})}
                    page = requests.get(f"{emu.url}/v0/{b.id}/{t.id}", params=params, headers=h, timeout=10).json()
                    for r in page["records"]:
                        recs[r["id"]] = hashlib.sha256(record_bytes(r)).hexdigest()
                    offset = page.get("offset")
                    if not offset:
                        break
                out[t.id] = recs
        return out
    finally:
        emu.limiter.enabled = True
        emu.counters.reset()


def workspace_attachments(ws) -> set[str]:
    """Attachment ids in the emulator's attachment cells."""
    out = set()
    for b in ws.bases:
        for t in b.tables:
            fids = [f["id"] for f in t.fields if f["type"] == "multipleAttachments"]
            for r in t.records.values():
                for fid in fids:
                    out |= {a["id"] for a in r.cells.get(fid) or []}
    return out


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} if path.exists() else set()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A fault-free snapshot of the standard workspace, to compare fault runs against."""
    ws = generate_workspace(**WS)
    store = Store.open(tmp_path_factory.mktemp("ref") / "store", create=True)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu, make_source(emu) as src:
        r = snap(store, src, comments=True)
    assert r.exit_code == EXIT_OK
    return content(store, r.info)


def test_three_runs_requests_no_429_and_exact_churn(tmp_path):
    ws = generate_workspace(**WS)
    store = Store.open(tmp_path / "store", create=True)
    with Emulator(ws, clock=ScaledClock(BINDING_SCALE)) as emu, make_source(emu) as src:
        sizes = {t.id: len(t.records) for b in ws.bases for t in b.tables}
        # -- run 1: everything is new
        r1 = snap(store, src, comments=True)
        assert r1.exit_code == EXIT_OK and r1.info.status == "complete"
        assert len(r1.info.bases) == 3 and r1.info.records == sum(sizes.values())
        c = emu.counters.snapshot()
        expected_lists = sum(max(1, math.ceil(n / 100)) for n in sizes.values())
        assert c["routes"]["list_records"]["requests"] == expected_lists  # ceil(N/100) per table, no more
        assert c["routes"]["get_schema"]["requests"] == 3  # one schema call per base
        assert c["total"]["429s"] == 0  # the throttle matches the server: never a 429
        assert r1.requests["rate_limited_429"] == 0
        assert r1.info.stats["throttle_wait_seconds"] > 0  # ... and it did hold requests back
        n_att = len(workspace_attachments(ws))
        assert r1.attachments["new"] == n_att == c["routes"]["content"]["requests"]
        n_commented = sum(1 for b in ws.bases for t in b.tables for r in t.records.values() if r.comments)
        assert c["routes"]["list_comments"]["requests"] == n_commented
        packs = files_under(store.root / "packs")

        # -- run 2: no change: no pack written, no attachment downloaded, no comment fetched
        emu.counters.reset()
        r2 = snap(store, src, comments=True)
        assert r2.exit_code == EXIT_OK
        c = emu.counters.snapshot()
        assert "content" not in c["routes"] and "list_comments" not in c["routes"]
        assert c["routes"]["list_records"]["requests"] == expected_lists and c["total"]["429s"] == 0
        assert files_under(store.root / "packs") == packs
        assert all((t.new, t.changed, t.deleted, t.unchanged) == (0, 0, 0, sizes[t.table_id]) for t in r2.tables)
        assert r2.attachments["new"] == 0 and r2.attachments["reused"] == n_att
        before = content(store, r2.info)

        # -- run 3: 1% churn; the counts match the churn exactly
        src_before = oracle(emu)
        assert before["records"] == src_before  # the snapshot holds exactly what the API serves
        rep = emu.churn(seed=1, edit_share=0.01, add_share=0.01, delete_share=0.01, replace_attachments=3)
        src_after = oracle(emu)
        r3 = snap(store, src, comments=True)
        assert r3.exit_code == EXIT_OK and emu.counters.snapshot()["total"]["429s"] == 0
        after = content(store, r3.info)
        recs3 = {}
        noop_edits = 0
        for t in r3.tables:
            e = rep["tables"][t.table_id]
            old, new = src_before[t.table_id], src_after[t.table_id]
            assert after["records"][t.table_id] == new
            # adds and deletes: exactly the churn report's records
            assert t.new == len(e["added"]) and set(new) - set(old) == set(e["added"])
            assert t.deleted == len(e["deleted"]) and set(old) - set(new) == set(e["deleted"])
            # changes: exactly the records whose content the API now serves differently...
            changed = {rid for rid in set(old) & set(new) if old[rid] != new[rid]}
            assert t.changed == len(changed)
            assert t.unchanged == len(new) - t.new - t.changed
            # ...which are the edited ones (an edit may rewrite a value with itself) plus records whose
            # links, lookups or formulas moved because of the churn (the report does not list those)
            direct = set(e["edited"]) | {x["record"] for x in e["replaced_attachments"]}
            noop_edits += len(direct - set(e["deleted"]) - changed)
            recs3[t.table_id] = {r["id"]: r for r in store.records(r3.info, t.base_id, t.table_id)}
            recs2 = {r["id"]: r for r in store.records(r2.info, t.base_id, t.table_id)}
            types = {f["id"]: f["type"] for b in ws.bases for tt in after["schemas"][b.id]["tables"]
                     if tt["id"] == t.table_id for f in tt["fields"]}
            for rid in changed - direct:
                f2, f3 = recs2[rid]["fields"], recs3[t.table_id][rid]["fields"]
                diff = {k for k in set(f2) | set(f3) if f2.get(k) != f3.get(k)}
                assert diff and {types.get(k) for k in diff} <= DERIVED, (rid, diff)
        assert noop_edits <= sum(len(e["edited"]) for e in rep["tables"].values()) // 3
        # attachments: exactly the replaced ones and those of added records were downloaded
        new_atts = {x["new"] for e in rep["tables"].values() for x in e["replaced_attachments"]}
        for t in r3.tables:
            for rid in rep["tables"][t.table_id]["added"]:
                for v in recs3[t.table_id][rid]["fields"].values():
                    if isinstance(v, list):
                        new_atts |= {a["id"] for a in v if isinstance(a, dict) and str(a.get("id")).startswith("att")}
        assert r3.attachments["new"] == len(new_atts) == emu.counters.snapshot()["routes"]["content"]["requests"]
        assert r3.info.stats["attachments"]["new"] == len(new_atts)
        assert new_atts <= set(after["attachments"]) and all(after["attachments"].values())


def _advance_clock_on(emu: Emulator, kind: str, tables: set[str], seconds: float):
    done: set[str] = set()

    def hook(event: str, info: dict) -> None:
        if event == kind and info["table_id"] in tables and info["table_id"] not in done:
            done.add(info["table_id"])
            emu.clock.advance(seconds)

    return hook


def test_faults_still_give_a_complete_snapshot_equal_to_a_fault_free_one(tmp_path, reference):
    ws = generate_workspace(**WS)
    store = Store.open(tmp_path / "store", create=True)
    tables = [t.id for b in ws.bases for t in b.tables]
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu, make_source(emu) as src:
        for i, kind in enumerate(("503", "500", "502", "drop", "429")):
            emu.faults.add(route="list_records", kind=kind, rate=0.04, seed=i)
        emu.faults.add(route="list_records", kind="slow", rate=0.04, seed=9, delay=0.02)
        emu.faults.add(route="get_schema", kind="503", rate=0.2, seed=10)
        emu.faults.add(route="list_comments", kind="drop", rate=0.05, seed=11)
        emu.faults.add(route="list_comments", kind="503", rate=0.05, seed=12)
        emu.faults.add(route="get_record", kind="502", rate=0.05, seed=13)
        expire_iter = set(tables[::2])
        expire_urls = set(tables[1::2])
        seen_pages: set[str] = set()
        url_hook = _advance_clock_on(emu, "table_listed", expire_urls, 7300.0)

        def hook(event: str, info: dict) -> None:
            # expire every open list iterator right after the first page of some tables
            if event == "table_page" and info["table_id"] in expire_iter and info["table_id"] not in seen_pages:
                seen_pages.add(info["table_id"])
                emu.expire_iterators()
            url_hook(event, info)

        r = snap(store, src, comments=True, on_event=hook)
        fired = {f["kind"]: f["fired"] for f in emu.faults.snapshot()}
    assert r.exit_code == EXIT_OK, r.errors
    assert sum(t.restarts for t in r.tables) >= len(expire_iter)
    assert r.requests["requests_by_route"].get("get_record", 0) > 0  # expired URLs refreshed
    assert r.requests["retries"] > 0 and sum(fired.values()) > 5
    assert content(store, r.info) == reference


def test_429_storm_from_a_too_fast_client_still_completes(tmp_path, reference):
    """A client 4x faster than the server allows: real 429s with their penalty, and the snapshot
    is still complete and identical."""
    ws = generate_workspace(**WS)
    store = Store.open(tmp_path / "store", create=True)
    # a 5x clock with a 3 s penalty: the server allows 25 requests/s per base, a 429 costs 0.6 s
    with Emulator(ws, clock=ScaledClock(5), penalty=3.0) as emu, make_source(emu, factor=4.0) as src:
        r = snap(store, src, comments=True)
        c = emu.counters.snapshot()
    assert c["total"]["429s"] >= 3 and r.requests["rate_limited_429"] == c["total"]["429s"]
    assert r.exit_code == EXIT_OK
    assert content(store, r.info) == reference


def test_permanently_failing_table_gives_partial_snapshot(tmp_path):
    ws = generate_workspace(**WS)
    bad_base = ws.bases[1]
    store = Store.open(tmp_path / "store", create=True)
    policy = RetryPolicy(max_retries=2, backoff=0.001, backoff_max=0.002)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu, make_source(emu, policy=policy) as src:
        emu.faults.add(route="list_records", kind="503", rate=1.0, base_id=bad_base.id)
        r = snap(store, src)
    assert r.exit_code == EXIT_PARTIAL and r.info.status == "partial"
    missing = {(m["base_id"], m["table_id"]) for m in r.info.missing}
    assert missing == {(bad_base.id, t.id) for t in bad_base.tables}
    assert all("503" in m["reason"] for m in r.info.missing)
    ok = [t for t in r.tables if t.status == "done"]
    assert len(ok) == 4 and all(t.records == 120 for t in ok)
