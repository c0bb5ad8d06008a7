"""The comment sweep: an edited comment (same comment count) is missed by a snapshot that reads only
changed counts, caught by `--comments full` or a sweep on schedule, shown by diff, history and export,
its edits and requests recorded in the snapshot; and the planner's view of what sweeps cost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, generate_workspace
from snapstore.ops import comment_sweep
from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource
from snapstore.store import Store

WS = dict(seed=11, bases=1, tables_per_base=2, records_per_table=30, attachment_share=0.0, comment_share=0.3)
FAST = ["--rate-limit-base", "2000", "--rate-limit-token", "20000", "--retry-backoff", "0", "--no-progress"]


@pytest.fixture
def emu():
    with Emulator(generate_workspace(**WS), rate_limits=False) as e:
        yield e


def _api(emu, method: str, path: str, body: dict | None = None) -> dict:
    r = requests.request(method, f"{emu.url}/v0/{path}", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {emu.token}"})
    r.raise_for_status()
    return r.json()


def _target(emu) -> tuple[str, str, str]:
    base = emu.workspace.bases[0]
    table = base.tables[0]
    return base.id, table.id, next(iter(table.records))


def _cli(emu, store, *args: str):
    env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
           "AIRTABLE_TOKEN_FILE": None, "SNAPSTORE_CONFIG": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _stored_text(store, base_id, table_id, rid, cid) -> str:
    info = store.resolve("latest")
    return next(c["text"] for c in store.comments(info, base_id, table_id)[rid] if c["id"] == cid)


def test_an_edited_comment_is_missed_by_counts_and_caught_by_a_sweep(emu, tmp_path):
    store_dir = tmp_path / "store"
    base_id, table_id, rid = _target(emu)
    cid = _api(emu, "POST", f"{base_id}/{table_id}/{rid}/comments", {"text": "the first text"})["id"]
    r = _cli(emu, store_dir, "snapshot", "--comments", *FAST)
    assert r.exit_code == 0, r.output
    store = Store.open(store_dir)
    assert _stored_text(store, base_id, table_id, rid, cid) == "the first text"

    _api(emu, "PATCH", f"{base_id}/{table_id}/{rid}/comments/{cid}", {"text": "the edited text"})
    # reading by comment counts, even with a full listing, cannot see the edit
    r = _cli(emu, store_dir, "snapshot", "--comments", "--changes", "full", *FAST)
    assert r.exit_code == 0, r.output
    assert _stored_text(Store.open(store_dir), base_id, table_id, rid, cid) == "the first text"
    assert "no sweep due" in r.output
    missed = Store.open(store_dir).resolve("latest").stats["comments"]
    assert missed["requests"] == 0 and missed["swept_tables"] == 0 and missed["edits"] is None

    emu.counters.reset()
    r = _cli(emu, store_dir, "snapshot", "--comments", "full", *FAST)
    assert r.exit_code == 0, r.output
    store = Store.open(store_dir)
    assert _stored_text(store, base_id, table_id, rid, cid) == "the edited text"
    stats = store.resolve("latest").stats["comments"]
    commented = sum(1 for t in emu.workspace.bases[0].tables for rec in t.records.values() if rec.comments)
    # every commented record read once (none has more than 100 comments), counted on both sides
    assert stats["requests"] == commented == emu.counters.requests("list_comments") == stats["sweep_requests"]
    assert stats["edits"] == 1 and stats["swept_tables"] == 2
    assert stats["tables"][f"{base_id}/{table_id}"]["edits"] == 1
    assert "1 edited comment(s) found" in " ".join(r.output.split())  # the summary wraps at 70 columns

    d = _cli(emu, store_dir, "diff", "latest~1", "latest", "--format", "json")
    (t,) = [t for t in json.loads(d.output)["tables"] if t["table_id"] == table_id]
    (e,) = t["comments"][rid]["edited"]
    assert (e["old"], e["new"]) == ("the first text", "the edited text")
    assert '"the first text" → "the edited text"' in _cli(emu, store_dir, "diff", "latest~1", "latest").output
    h = json.loads(_cli(emu, store_dir, "history", rid, "--format", "json").output)
    assert [c["texts"] for c in h["comments"] if c["id"] == cid] == [["the first text", "the edited text"]]
    out = tmp_path / "out"
    assert _cli(emu, store_dir, "export", "latest", "--out", str(out), "--format", "json").exit_code == 0
    files = list(out.glob("*/data/json/*/*.comments.json"))
    assert any("the edited text" in f.read_text() for f in files)
    assert not any("the first text" in f.read_text() for f in files)


def _run(store, client, now: datetime, **opts):
    plan = plan_snapshot(client, Selection())
    return take_snapshot(store, client, plan, SnapshotOptions(comments=True, now=lambda: now, **opts))


def test_sweeps_run_on_schedule_and_the_store_remembers_the_last(emu, tmp_path):
    client = AirtableSource(emu.token, emu.url, rate_base=2000, rate_token=20000)
    store = Store.open(tmp_path / "store", create=True)
    base_id, table_id, rid = _target(emu)
    cid = _api(emu, "POST", f"{base_id}/{table_id}/{rid}/comments", {"text": "before"})["id"]
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    first = _run(store, client, t0).info.stats["comments"]
    assert first["swept_tables"] == 2 and first["edits"] == 0  # a first read of everything is a sweep
    _api(emu, "PATCH", f"{base_id}/{table_id}/{rid}/comments/{cid}", {"text": "after"})
    day6 = _run(store, client, t0 + timedelta(days=6)).info.stats["comments"]
    assert day6["swept_tables"] == 0 and day6["requests"] == 0
    assert _stored_text(store, base_id, table_id, rid, cid) == "before"
    # the planner's view, from the store alone
    p = comment_sweep.plan(store, now=t0 + timedelta(days=6))
    assert p["every"] == comment_sweep.DEFAULT_EVERY and p["sweep_requests"] == first["sweep_requests"]
    assert not any(t["due"] for t in p["tables"].values())
    assert p["tables"][f"{base_id}/{table_id}"]["next_due"] == "2026-01-12T00:00:00Z"
    day7 = _run(store, client, t0 + timedelta(days=7)).info.stats["comments"]
    assert day7["swept_tables"] == 2 and day7["edits"] == 1 and day7["requests"] == first["sweep_requests"]
    assert _stored_text(store, base_id, table_id, rid, cid) == "after"
    # never on schedule: only a full sweep
    later = _run(store, client, t0 + timedelta(days=30), comments_every=None).info.stats["comments"]
    assert later["swept_tables"] == 0
    client.close()


def test_a_sweep_waits_while_the_months_api_budget_has_no_room_for_it(emu, tmp_path):
    from snapstore import ledger

    store_dir = tmp_path / "store"
    r = _cli(emu, store_dir, "snapshot", "--comments", *FAST)  # a first snapshot with comments is a sweep
    assert r.exit_code == 0, r.output
    store = Store.open(store_dir)
    first = ledger.usage(store.backend).total
    cost = comment_sweep.plan(store)["sweep_requests"]
    assert first > cost > 0
    # a budget that holds one more snapshot like the first and nothing beyond: the sweep, due at
    # once (--comments-every 0s), waits
    r = _cli(emu, store_dir, "snapshot", "--comments", "--comments-every", "0s", "--api-budget", str(2 * first),
             *FAST)
    assert r.exit_code == 0, r.output
    assert "no sweep due" in r.output
    assert Store.open(store_dir).resolve("latest").stats["comments"]["swept_tables"] == 0
    # with room in the month for a sweep every second (what --comments-every 0s asks), the run sweeps
    r = _cli(emu, store_dir, "snapshot", "--comments", "--comments-every", "0s", "--api-budget", "1000000000",
             *FAST)
    assert r.exit_code == 0, r.output
    stats = Store.open(store_dir).resolve("latest").stats["comments"]
    assert stats["swept_tables"] > 0 and stats["requests"] == cost


def test_fit_interval_keeps_sweeps_inside_a_monthly_budget():
    week = comment_sweep.DEFAULT_EVERY
    # 1,000 commented records: a weekly sweep is ~4,300 calls a month, inside 10,000 left for it
    assert comment_sweep.fit_interval(1000, 10_000) == week
    # 1,000 calls a month left: one sweep a month
    assert comment_sweep.fit_interval(1000, 1000) == comment_sweep.MONTH
    assert comment_sweep.fit_interval(1000, 0) is None
    assert comment_sweep.fit_interval(1000, None) == week
    assert comment_sweep.sweep_requests([0, 1, 100, 101, 250]) == 1 + 1 + 2 + 3


def test_comments_option_is_checked(emu, tmp_path):
    r = _cli(emu, tmp_path / "s", "snapshot", "--comments", "sometimes", *FAST)
    assert r.exit_code == 2 and "expected changed or full" in r.output
    r = _cli(emu, tmp_path / "s", "snapshot", "--comments", "--comments-every", "auto", *FAST)
    assert r.exit_code == 2


def test_a_failing_comments_endpoint_is_given_up_in_bounded_requests(tmp_path):
    """One base's comments endpoint answers 503 to everything: a few failures end a table's comments,
    two tables end the base's, the run goes on and commits partial (exit 3), naming each table and why;
    the other base's comments are read. No retry sleeps (--retry-backoff 0)."""
    ws = generate_workspace(seed=5, bases=2, tables_per_base=3, records_per_table=30, attachment_share=0.0,
                            comment_share=0.5)
    with Emulator(ws, rate_limits=False) as emu:
        bad, good = emu.workspace.bases
        emu.faults.add(route="list_comments", kind="503", rate=1.0, base_id=bad.id)
        r = _cli(emu, tmp_path / "store", "snapshot", "--comments", "--max-retries", "8", *FAST)
        assert r.exit_code == 3, r.output
        from snapstore.ops import snapshot_comments as SC

        # the first request of the base gets every retry (1 + 8), then one retry each: 3 failures a table,
        # 2 tables; the third table reads none
        first, fewer = 1 + 8, 1 + SC.FEWER_RETRIES
        want = first + (SC.MAX_CONSECUTIVE - 1) * fewer + SC.MAX_CONSECUTIVE * fewer
        assert emu.counters.snapshot()["bases"][bad.id]["requests"] - 1 - 3 == want  # minus schema and listings
        info = Store.open(tmp_path / "store").resolve("latest")
        reasons = {m["table_id"]: m["reason"] for m in info.missing if m["base_id"] == bad.id}
        assert set(reasons) == {t.id for t in bad.tables}
        assert all("503" in why for why in reasons.values())
        assert sum("3 comments requests in a row failed" in why for why in reasons.values()) == 2
        assert "the comments of 2 tables of this base could not be read" in reasons[bad.tables[2].id]
        assert all(m.get("records_kept") for m in info.missing)  # the records are all there
        assert not any(m["base_id"] == good.id for m in info.missing)
        assert sum(len(store_cs) for t in good.tables
                   for store_cs in [Store.open(tmp_path / "store").comments(info, good.id, t.id)]) > 0
        assert f"{bad.id}/{bad.tables[0].id}: comments not read" in r.output
