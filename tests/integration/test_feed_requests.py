"""What a feed snapshot costs at the source, request by request, and that each request it no longer
makes (whoami, the bases listing, the schemas) is still made whenever it is needed: a revoked token
fails with one line before anything is written, a base created in the workspace joins the snapshots
within a day (at once when named), a base whose access was lost is reported, and ``--full-every auto``
sweeps each base as often as its size allows."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, generate_workspace
from snapstore.emulator.clock import ManualClock
from snapstore.feed import manage, sweep
from snapstore.feed.hints import feed_hints
from snapstore.feed.state import parse_time
from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.selection import SelectionError
from snapstore.source import AirtableSource
from snapstore.store import Store
from tests.helpers.feed_world import FAST, World, feed_of, hashes

HOUR = 3600


def snap(w, *, src=None, selection=None, full_every=None, **opts):
    """A snapshot as the CLI plans it: with the store's feed hints, on the emulator's clock."""
    src = src or w.src
    hints = feed_hints(w.store, full_every=full_every, changes=opts.get("changes", "auto"), now=w.now())
    w.emu.counters.reset()
    plan = plan_snapshot(src, selection, feed=hints)
    res = take_snapshot(w.store, src, plan, SnapshotOptions(attachments=False, now=w.now, full_every=full_every,
                                                            **opts))
    return res, {r: v["requests"] for r, v in w.emu.counters.snapshot()["routes"].items() if v["requests"]}


@pytest.fixture
def w(tmp_path):
    world = World(tmp_path, records=150, tables=2)
    assert world.enable()[0]["ok"]
    res, routes = snap(world)  # the baseline: a full listing, which lists the bases
    assert routes.get("list_bases") == 1 and feed_of(res, world.base_id)["mode"] == "full"
    yield world
    world.close()


def test_a_feed_snapshot_makes_only_the_hook_payload_and_list_requests(w):
    w.clock.advance(HOUR)
    w.emu.churn(seed=3, edit_share=0.02, add_share=0.0, delete_share=0.0)
    res, routes = snap(w)
    f = feed_of(res, w.base_id)
    assert f["mode"] == "feed" and f["reread_changed"] > 0
    touched = len(f["reread_by_table"])
    # per table with changes, ceil(re-read / 100) list requests; no whoami, bases or schema request
    assert routes == {"webhook_list": 1, "webhook_payloads": 1, "list_records": touched}, routes
    assert sum(-(-n // 100) for n in f["reread_by_table"].values()) == touched
    assert f["requests"] == 2 + touched and res.info.stats["bases_listing_skipped"]
    full, _ = snap(w, changes="full")
    assert hashes(w.store, res.info) == hashes(w.store, full.info) and feed_of(full, w.base_id)["missed"] == 0


def test_an_unchanged_base_costs_two_requests(w):
    w.clock.advance(HOUR)
    res, routes = snap(w)
    assert routes == {"webhook_list": 1, "webhook_payloads": 1}, routes
    assert feed_of(res, w.base_id)["requests"] == 2 and res.info.records == 300


def test_a_revoked_token_fails_on_the_first_request_with_one_line(tmp_path):
    w = World(tmp_path, records=50, tables=2, start=time.time())  # the CLI judges times by the wall clock
    tok = "pat" + "r" * 14 + "." + "2" * 64
    w.emu.add_token(tok)
    env = {"AIRTABLE_TOKEN": tok, "AIRTABLE_API_URL": w.emu.url, "SNAPSTORE_STORE": str(w.store.location)}
    try:
        assert CliRunner().invoke(main, ["feed", "enable"], env=env).exit_code == 0
        assert CliRunner().invoke(main, ["snapshot", "--no-progress", "--no-attachments"], env=env).exit_code == 0
        before = [s.full_id for s in w.store.list_snapshots()]
        del w.emu.grants[tok]  # revoked
        w.emu.counters.reset()
        r = CliRunner().invoke(main, ["snapshot", "--no-progress", "--no-attachments", "-q"], env=env)
        routes = {k: v["requests"] for k, v in w.emu.counters.snapshot()["routes"].items() if v["requests"]}
        assert "whoami" not in routes and "list_bases" not in routes  # the hook listing was the first request
        assert r.exit_code == 1, r.output
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and ("401" in lines[0] or "rejected" in lines[0]), r.output
        assert [s.full_id for s in type(w.store).open(w.store.location).list_snapshots()] == before
    finally:
        w.close()


def _new_base(w) -> str:
    r = requests.post(f"{w.emu.url}/v0/meta/bases", headers=w.headers, timeout=20, json={
        "name": "Created later", "workspaceId": w.emu.workspace.workspace_id,
        "tables": [{"name": "Things", "fields": [{"name": "Name", "type": "singleLineText"}]}]})
    assert r.status_code == 200, r.text
    base_id = r.json()["id"]
    table_id = r.json()["tables"][0]["id"]
    w.api("POST", f"{base_id}/{table_id}", {"records": [{"fields": {"Name": "one"}}, {"fields": {"Name": "two"}}]})
    return base_id


def test_a_base_created_later_joins_within_a_day_and_at_once_when_named(w):
    new = _new_base(w)
    w.clock.advance(HOUR)
    res, routes = snap(w)  # the last listing is an hour old, every base it named is fed: not listed
    assert "list_bases" not in routes and new not in {b.base_id for b in res.info.bases}
    res, routes = snap(w, selection=Selection(bases=[new]))  # named: not in the last listing, so listed
    assert routes.get("list_bases") == 1 and [b.base_id for b in res.info.bases] == [new]
    assert res.info.records == 2
    w.clock.advance(sweep.BASES_EVERY.total_seconds())
    res, routes = snap(w)  # the listing is a day old: listed again, the new base read with the others
    assert routes.get("list_bases") == 1 and routes.get("whoami") == 1
    assert {b.base_id for b in res.info.bases} == {w.base_id, new}
    assert feed_of(res, w.base_id)["mode"] == "feed"
    w.clock.advance(HOUR)
    res, routes = snap(w)  # the new base is not fed: every run lists the bases while it is read in full
    assert routes.get("list_bases") == 1 and {b.base_id for b in res.info.bases} == {w.base_id, new}


def test_a_base_whose_access_was_lost_is_reported(tmp_path):
    ws = generate_workspace(seed=4, bases=2, tables_per_base=2, records_per_table=40, attachment_share=0.0,
                            link_share=0.3, comment_share=0.0)
    clock = ManualClock(1_780_000_000.0)
    tok = "pat" + "l" * 14 + "." + "3" * 64
    keep, lose = ws.bases[0].id, ws.bases[1].id
    with Emulator(ws, clock=clock, rate_limits=False, tokens={tok: [keep, lose]}) as emu:
        src = AirtableSource(tok, emu.url, rate_base=1e6, rate_token=1e6, penalty=0.0, policy=FAST)
        w = SimpleNamespace(emu=emu, src=src, now=lambda: datetime.fromtimestamp(clock.now(), UTC),
                            store=Store.open(tmp_path / "store", create=True))
        assert all(e["ok"] for e in manage.enable(w.store, src, [{"id": keep}, {"id": lose}], now=w.now()))
        snap(w)
        clock.advance(HOUR)
        emu.grants[tok] = {keep}  # access to one base removed
        res, routes = snap(w)
        assert routes.get("list_bases") == 1  # its hook listing failed: the plan listed the bases to know why
        assert [b.base_id for b in res.info.bases] == [keep] and feed_of(res, keep)["mode"] == "feed"
        assert any(n.startswith(lose) and "no longer visible to this token" in n for n in res.notices), res.notices
        assert res.exit_code == 0
        with pytest.raises(SelectionError, match="visible to this token"):
            plan_snapshot(src, Selection(bases=[lose]), feed=feed_hints(w.store, now=w.now()))
        src.close()


def test_full_every_auto_scales_with_the_base_and_a_duration_wins():
    assert sweep.interval("auto", [150, 150]) == 24 * HOUR  # 4 pages: swept daily
    assert sweep.interval("auto", [20_000] * 5) == 7 * 24 * HOUR  # 1,000 pages: weekly (the clamp)
    assert sweep.interval("auto", [5_000] * 10) == 7 * 24 * HOUR
    assert sweep.interval("auto", [4_000, 3_950, 0]) == (40 + 40 + 1) * HOUR
    assert sweep.interval(2 * HOUR, [20_000] * 5) == 2 * HOUR and sweep.interval(None, [1]) is None


def test_auto_sweeps_a_small_base_daily_and_status_says_when(w):
    w.clock.advance(23 * HOUR)
    res, routes = snap(w, full_every="auto")
    assert feed_of(res, w.base_id)["mode"] == "feed" and "list_bases" not in routes
    st = manage.status(w.store, now=w.now())["bases"][0]
    assert st["sweep_every_hours"] == 24 and not st["sweep_due"]
    assert parse_time(st["next_sweep"]) == parse_time(st["last_full"]) + timedelta(hours=24)
    w.clock.advance(2 * HOUR)
    assert manage.status(w.store, now=w.now())["bases"][0]["sweep_due"]
    res, routes = snap(w, full_every="auto")
    f = feed_of(res, w.base_id)
    assert f["mode"] == "full" and "periodic full listing" in f["reason"] and "24 h" in f["reason"]
    assert f["missed"] == 0 and routes.get("list_bases") == 1  # a sweep lists the bases too
    w.clock.advance(2 * HOUR)
    res, _ = snap(w, full_every=HOUR)  # an explicit duration wins over auto
    assert feed_of(res, w.base_id)["mode"] == "full"


def test_feed_status_cli_shows_the_next_full_listing(w):
    env = {"SNAPSTORE_STORE": str(w.store.location)}
    w.clock.advance(HOUR)
    snap(w, full_every="auto")
    r = CliRunner().invoke(main, ["feed", "status"], env=env)
    assert r.exit_code == 0 and "next full listing" in r.output and "(every 24 h)" in r.output, r.output
    doc = json.loads(CliRunner().invoke(main, ["feed", "status", "--json"], env=env).output)
    st = doc["bases"][0]
    assert st["sweep_every_hours"] == 24 and st["next_sweep"] > st["last_full"]


@pytest.mark.parametrize(("damage", "reason"), [
    ({"store_id": "f" * 32}, "belongs to another store"),
    ({"cursor": "x"}, "damaged"),
])
def test_a_feed_state_of_another_store_or_damaged_costs_one_listing(w, monkeypatch, damage, reason):
    """The commit's feed state cannot be trusted: one line, a full listing from the hook's cursor,
    exit 0, nothing lost; the run after is a feed snapshot again."""
    real = type(w.store.catalog).snapshot_docs

    def tampered(self):
        docs = real(self)
        seq, cid, doc_json = docs[-1]
        doc = json.loads(doc_json)
        doc["feed"][w.base_id].update(damage)
        return [*docs[:-1], (seq, cid, json.dumps(doc))]

    w.clock.advance(HOUR)
    w.emu.churn(seed=11, edit_share=0.02, add_share=0.0, delete_share=0.0)
    monkeypatch.setattr(type(w.store.catalog), "snapshot_docs", tampered)
    res, routes = snap(w)
    monkeypatch.undo()
    f = feed_of(res, w.base_id)
    assert res.exit_code == 0 and f["mode"] == "full" and reason in f["reason"] and "\n" not in f["reason"], f
    assert routes.get("list_bases") == 1  # the base is not counted as fed: the plan lists the bases
    w.clock.advance(HOUR)
    w.emu.churn(seed=12, edit_share=0.02, add_share=0.0, delete_share=0.0)
    nxt, _ = snap(w)
    assert feed_of(nxt, w.base_id)["mode"] == "feed"
    full, _ = snap(w, changes="full")
    assert hashes(w.store, nxt.info) == hashes(w.store, full.info) and feed_of(full, w.base_id)["missed"] == 0


def test_a_feed_plan_fails_fast_when_the_api_is_unreachable():
    """Without whoami, the first hook listing is the preflight: few, short retries, then Unreachable."""
    import socket

    from snapstore.feed.hints import FeedHints
    from snapstore.source import RetryPolicy
    from snapstore.source.errors import Unreachable

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    hints = FeedHints(now, schemas={"appAAAAAAAAAAAAA1": {"tables": []}}, fed={"appAAAAAAAAAAAAA1"},
                      listed_at=now, visible=[{"id": "appAAAAAAAAAAAAA1", "name": "A"}])
    assert hints.must_list(["appAAAAAAAAAAAAA1"]) is None
    slow = RetryPolicy(max_retries=8, max_429=3, backoff=5.0, backoff_max=30.0)  # a snapshot's patience
    src = AirtableSource("pat" + "u" * 14 + "." + "4" * 64, f"http://127.0.0.1:{port}", policy=slow)
    seen = []
    real = src.quick_retries

    def spy(*a, **k):
        seen.append(True)
        return real(*a, **k)

    src.quick_retries = spy
    with src, pytest.raises(Unreachable, match="cannot reach"):
        plan_snapshot(src, feed=hints)
    assert seen and src._adapter.policy is slow  # the short policy applied, and put back
