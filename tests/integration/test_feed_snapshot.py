"""Feed snapshots end to end against the emulator, with the webhook routes answered by tests/feedfake.py
(a diff of writable cells only: the worst case of unreported computed changes). After every churn
step, a feed snapshot and then a full listing hold the same record hashes, and the full listing
measures 0 records missed by the feed."""

from __future__ import annotations

import pytest
from feedfake import FakeHooks

from snapstore.emulator import Emulator, generate_workspace
from snapstore.feed import manage
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource, RetryPolicy
from snapstore.store import Store
from tests.helpers.feed_world import feed_of, hashes

FAST = RetryPolicy(max_retries=3, max_429=3, backoff=0.001, backoff_max=0.01)


def source_for(emu) -> AirtableSource:
    return AirtableSource(emu.token, emu.url, rate_base=1e6, rate_token=1e6, penalty=0.0, policy=FAST,
                          timeout=(5, 10))


def snap(store, src, **opts):
    from snapstore.feed.state import stored_schemas

    plan = plan_snapshot(src, stored_schemas=stored_schemas(store) if opts.get("changes") != "full" else None)
    return take_snapshot(store, src, plan, SnapshotOptions(attachments=False, **opts))


@pytest.fixture
def world(tmp_path, monkeypatch):
    ws = generate_workspace(seed=3, bases=1, tables_per_base=3, records_per_table=250, attachment_share=0.0,
                            link_share=0.6, comment_share=0.0)
    with Emulator(ws, rate_limits=False) as emu:
        hooks = FakeHooks(emu).install(monkeypatch)
        src = source_for(emu)
        store = Store.open(tmp_path / "store", create=True)
        base_id = ws.bases[0].id
        yield emu, hooks, src, store, base_id
        src.close()


def test_feed_then_full_listing_agree_after_churn_steps(world):
    emu, hooks, src, store, base_id = world
    res = manage.enable(store, src, [{"id": base_id, "name": "b"}])
    assert res[0]["ok"], res
    first = snap(store, src)
    assert feed_of(first, base_id)["mode"] == "full" and "no feed baseline" in feed_of(first, base_id)["reason"]
    before = emu.counters.requests(base_id=base_id)
    unchanged = snap(store, src)
    f = feed_of(unchanged, base_id)
    assert f["mode"] == "feed" and f["payloads"] == 0
    assert emu.counters.requests(base_id=base_id) == before  # no schema, no record request (hooks are faked)
    assert hashes(store, unchanged.info) == hashes(store, first.info)
    for step in range(6):
        emu.churn(seed=step + 10, edit_share=0.02, add_share=0.01, delete_share=0.01,
                  rename_fields=1 if step == 2 else 0, add_fields=1 if step == 4 else 0)
        fed = snap(store, src)
        f = feed_of(fed, base_id)
        assert f["mode"] == "feed", (step, f["reason"])
        full = snap(store, src, changes="full")
        g = feed_of(full, base_id)
        assert g["mode"] == "full" and g["missed"] == 0, g
        assert hashes(store, fed.info) == hashes(store, full.info), f"step {step}"
        assert full.info.stats["feed"][base_id]["missed"] == 0


def test_a_feed_snapshot_re_reads_only_what_changed(world):
    emu, hooks, src, store, base_id = world
    manage.enable(store, src, [{"id": base_id, "name": "b"}])
    snap(store, src)
    t = emu.workspace.bases[0].tables[0]
    rid = sorted(t.records)[0]
    name_field = t.primary_field_id
    import requests

    r = requests.patch(f"{emu.url}/v0/{base_id}/{t.id}", json={"records": [{"id": rid, "fields": {
        name_field: "edited through the API"}}], "returnFieldsByFieldId": True},
        headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)
    assert r.status_code == 200, r.text
    before = emu.counters.requests(base_id=base_id)
    fed = snap(store, src)
    f = feed_of(fed, base_id)
    assert f["mode"] == "feed" and f["reread_changed"] == 1 and f["tables_listed"] == 0
    # one re-read request for the record, one per table holding knock-ons; no schema request
    knock_tables = {x.table_id for x in fed.tables if x.changed and x.table_id != t.id}
    assert emu.counters.requests(base_id=base_id) - before == 1 + len(knock_tables)
    res = next(x for x in fed.tables if x.table_id == t.id)
    assert (res.changed, res.new, res.deleted) == (1, 0, 0)
