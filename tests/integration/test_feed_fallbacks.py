"""Every way the feed can be doubtful falls back to a full listing of the base, with one line saying
why, exit 0, and (where the hook is the problem) a new hook created *before* the listing. Bad input
(a hook deleted from outside, another store's registry, a damaged feed state, a token that lost
access) gets one line and a fallback or a refusal, and nothing stored is lost. A run killed between
reading the payloads and the commit reads the same payloads again and ends identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snapstore.feed.state import REGISTRY_PREFIX, Registry, load_registry, save_registry
from snapstore.source import AirtableSource
from snapstore.source import webhooks as wh
from tests.helpers.feed_world import World, feed_of, hashes


@pytest.fixture
def w(tmp_path):
    world = World(tmp_path, records=150, tables=2)
    assert world.enable()[0]["ok"]
    world.snap()
    yield world
    world.close()


def _tables(w) -> int:
    return len(w.base.tables)


def assert_full_fallback(w, result, reason: str, *, recreated: bool) -> dict:
    f = feed_of(result, w.base_id)
    assert result.exit_code == 0, result.errors
    assert f["mode"] == "full" and reason in f["reason"] and "\n" not in f["reason"], f
    assert f["tables_listed"] == _tables(w)
    assert f["hook_recreated"] is recreated
    reg = load_registry(w.store)
    live = [h["id"] for h in w.emu.webhooks.hooks(w.base_id) if h["isHookEnabled"]]
    assert reg.hooks[w.base_id].hook_id in live
    # the next run is a feed snapshot again, from the (new) hook's cursor
    w.emu.churn(seed=7, edit_share=0.02, add_share=0.0, delete_share=0.0)
    nxt = w.snap()
    assert feed_of(nxt, w.base_id)["mode"] == "feed", feed_of(nxt, w.base_id)
    full = w.snap(changes="full")
    assert hashes(w.store, nxt.info) == hashes(w.store, full.info)
    assert feed_of(full, w.base_id)["missed"] == 0
    return f


@pytest.mark.parametrize(("control", "reason"), [
    ("expire", "the hook expired"),
    ("disable", "the hook was disabled"),
    ("delete", "the hook is gone (deleted outside snapstore)"),
])
def test_a_broken_hook_is_re_created_before_the_full_listing(w, control, reason):
    old = w.hook_id()
    getattr(w.emu.webhooks, control)(w.base_id, old)
    w.emu.churn(seed=3, edit_share=0.02, add_share=0.0, delete_share=0.0)
    res = w.snap()
    assert_full_fallback(w, res, reason, recreated=True)
    assert load_registry(w.store).hooks[w.base_id].hook_id != old


@pytest.mark.parametrize("code", ["INVALID_HOOK", "INVALID_FILTERS", "INTERNAL_ERROR"])
def test_an_error_payload_re_creates_the_hook(w, code):
    old = w.hook_id()
    w.emu.webhooks.inject_error(w.base_id, old, code)
    res = w.snap()
    assert_full_fallback(w, res, f"an error payload ({code})", recreated=True)
    assert old not in [h["id"] for h in w.emu.webhooks.hooks(w.base_id)]  # snapstore deleted its old hook


def test_a_cursor_older_than_airtable_keeps_payloads_is_not_trusted(w):
    hook = w.hook_id()
    w.emu.churn(seed=3, edit_share=0.02, add_share=0.0, delete_share=0.0)
    w.clock.advance(5 * 86400)
    wh.refresh_hook(w.src, w.base_id, hook)  # alive, but nobody read its payloads
    w.clock.advance(3 * 86400)
    res = w.snap()
    f = assert_full_fallback(w, res, "longer than Airtable keeps them (7 days)", recreated=False)
    assert f["hook_id"] == hook


def test_more_changes_than_a_listing_costs(w):
    w.emu.churn(seed=3, edit_share=0.9, add_share=0.6, delete_share=0.0)  # 225 re-reads: 3 pages, listing 2
    res = w.snap()
    f = assert_full_fallback(w, res, "more changes than a full listing would cost", recreated=False)
    assert f["missed"] == 0 and f["payloads"] >= 1  # the listing measured the feed


def test_no_hook_yet_with_changes_feed(tmp_path):
    w = World(tmp_path, records=150, tables=2)
    try:
        first = w.snap(changes="feed")
        f = feed_of(first, w.base_id)
        assert f["mode"] == "full" and "no hook yet" in f["reason"] and f["hook_recreated"]
        assert len(w.emu.webhooks.hooks(w.base_id)) == 1
        w.emu.churn(seed=3, edit_share=0.02, add_share=0.0, delete_share=0.0)
        assert feed_of(w.snap(), w.base_id)["mode"] == "feed"
    finally:
        w.close()


def test_a_base_without_the_feed_is_listed_in_full_without_hooks(tmp_path):
    w = World(tmp_path, records=50, tables=2)
    try:
        res = w.snap()
        assert res.feed == [] and w.emu.webhooks.hooks(w.base_id) == []
    finally:
        w.close()


def test_a_token_without_webhook_manage_turns_the_feed_off_with_one_notice(w):
    from snapstore.emulator.server import SCOPES

    tok = "pat" + "n" * 14 + "." + "0" * 64
    w.emu.add_token(tok, scopes=[s for s in SCOPES if s != "webhook:manage"])
    src = AirtableSource(tok, w.emu.url, rate_base=1e6, rate_token=1e6, penalty=0.0, policy=w.src.policy)
    try:
        res = w.snap(src=src)
    finally:
        src.close()
    f = feed_of(res, w.base_id)
    assert res.exit_code == 0 and f["mode"] == "full" and "webhook:manage" in f["reason"]
    assert len([n for n in res.notices if "webhook:manage" in n]) == 1
    assert w.base_id not in res.info.doc.get("feed", {})  # no cursor kept: the next run starts over
    assert len(w.emu.webhooks.hooks(w.base_id)) == 1  # nothing was deleted or created


def test_ten_hooks_already_on_the_base(tmp_path):
    w = World(tmp_path, records=50, tables=2)
    try:
        for _ in range(wh.MAX_HOOKS_PER_BASE):
            w.emu.webhooks.create(w.base_id, {"specification": wh.SPECIFICATION})
        res = w.enable()
        assert not res[0]["ok"] and "10 webhooks" in res[0]["message"]
        snap = w.snap(changes="feed")
        f = feed_of(snap, w.base_id)
        assert snap.exit_code == 0 and f["mode"] == "full" and "10 webhooks" in f["reason"]
        assert len(w.emu.webhooks.hooks(w.base_id)) == wh.MAX_HOOKS_PER_BASE  # none touched
    finally:
        w.close()


def test_another_stores_registry_is_refused_and_rebuilt_from_the_commits(w, tmp_path):
    hook = w.hook_id()
    foreign = Registry("f" * 32, {w.base_id: load_registry(w.store).hooks[w.base_id]})
    foreign.hooks[w.base_id].hook_id = "achSOMEONEELSE0001"
    key = f"{REGISTRY_PREFIX}/99991231T000000000000-ffff.json"  # newer than ours
    w.store.backend.put(key, foreign.to_json())
    w.emu.churn(seed=3, edit_share=0.02, add_share=0.0, delete_share=0.0)
    res = w.snap()
    assert [n for n in res.notices if "belongs to another store" in n and "rebuilt" in n]
    assert feed_of(res, w.base_id)["mode"] == "feed" and load_registry(w.store).hooks[w.base_id].hook_id == hook


def test_a_damaged_registry_is_rebuilt_and_a_damaged_link_index_costs_a_listing(w):
    (key, _size), = list(w.store.backend.list(REGISTRY_PREFIX))
    w.store.backend.delete(key)
    w.store.backend.put(key, b"\x00garbage")
    res = w.snap()
    assert [n for n in res.notices if "unreadable" in n]
    assert feed_of(res, w.base_id)["mode"] == "feed"
    links = res.info.doc["feed"][w.base_id]["links"]
    if links:  # the workspace has one-sided links: their index object lost
        from snapstore.store import objects

        w.store.backend.delete(objects.object_key(links))
        w.emu.churn(seed=4, edit_share=0.02, add_share=0.0, delete_share=0.0)
        res = w.snap()
        f = feed_of(res, w.base_id)
        assert f["mode"] == "full" and "link index is unreadable" in f["reason"] and f["missed"] == 0


def test_registry_survives_save_and_reload(w):
    reg = load_registry(w.store)
    save_registry(w.store, reg, w.now())
    assert load_registry(w.store).hooks == reg.hooks


CHILD = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from snapstore.feed import engine
    from snapstore.feed.state import stored_schemas
    from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
    from snapstore.source import AirtableSource
    from snapstore.store import Store
    real = engine.read_payloads
    def read_then_die(*a, **k):
        got = real(*a, **k)
        print(len(got.payloads), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    engine.read_payloads = read_then_die
    now = float(sys.argv[3])
    store = Store.open(sys.argv[2])
    src = AirtableSource(os.environ["TOKEN"], sys.argv[1], rate_base=1e6, rate_token=1e6, penalty=0.0)
    plan = plan_snapshot(src, stored_schemas=stored_schemas(store))
    take_snapshot(store, src, plan, SnapshotOptions(attachments=False, full_every=None,
                                                    now=lambda: datetime.fromtimestamp(now, UTC)))
""")


def test_sigkill_between_reading_payloads_and_the_commit(w):
    w.emu.churn(seed=5, edit_share=0.05, add_share=0.02, delete_share=0.02)
    before = w.store.list_snapshots()
    proc = subprocess.run([sys.executable, "-c", CHILD, w.emu.url, str(w.store.location), str(w.clock.now())],
                          env={**os.environ, "TOKEN": w.emu.token}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    read_first = int(proc.stdout.split()[0])
    assert read_first >= 1
    store = type(w.store).open(w.store.location)
    assert [s.full_id for s in store.list_snapshots()] == [s.full_id for s in before]  # nothing committed
    w.store = store
    again = w.snap()
    f = feed_of(again, w.base_id)
    assert f["mode"] == "feed" and f["payloads"] == read_first  # the same payloads, read again
    full = w.snap(changes="full")
    assert hashes(store, again.info) == hashes(store, full.info) and feed_of(full, w.base_id)["missed"] == 0


def test_feed_status_and_disable_from_the_cli(w, tmp_path):
    from click.testing import CliRunner

    from snapstore.cli import main

    env = {"AIRTABLE_TOKEN": w.emu.token, "AIRTABLE_API_URL": w.emu.url, "SNAPSTORE_STORE": str(w.store.location)}
    r = CliRunner().invoke(main, ["feed", "status"], env=env)
    assert r.exit_code == 0 and w.hook_id() in r.output and "cursor" in r.output, r.output
    r = CliRunner().invoke(main, ["feed", "status", "--json"], env=env)
    doc = json.loads(r.output)
    assert doc["bases"][0]["hook_id"] == w.hook_id() and doc["bases"][0]["last_full"]
    other = w.emu.webhooks.create(w.base_id, {"specification": wh.SPECIFICATION})["id"]  # not snapstore's
    r = CliRunner().invoke(main, ["feed", "disable"], env=env)
    assert r.exit_code == 0 and "deleted" in r.output, r.output
    assert [h["id"] for h in w.emu.webhooks.hooks(w.base_id)] == [other]  # only its own hook went
    r = CliRunner().invoke(main, ["feed", "status"], env=env)
    assert "not enabled" in r.output


def test_a_token_that_lost_access_to_the_base_is_refused_with_one_line(w):
    from click.testing import CliRunner

    from snapstore.cli import main

    tok = "pat" + "z" * 14 + "." + "1" * 64
    w.emu.add_token(tok, bases=[])
    tree = sorted(str(p) for p in Path(w.store.location).rglob("*") if p.is_file() and "logs" not in p.parts)
    r = CliRunner().invoke(main, ["snapshot", "--base", w.base_id, "--no-progress"],
                           env={"AIRTABLE_TOKEN": tok, "AIRTABLE_API_URL": w.emu.url,
                                "SNAPSTORE_STORE": str(w.store.location)})
    assert r.exit_code == 2 and f"no base '{w.base_id}' visible to this token" in r.output
    assert sorted(str(p) for p in Path(w.store.location).rglob("*") if p.is_file() and "logs" not in p.parts) == tree


def test_a_table_selection_keeps_no_feed_state_and_the_next_run_starts_over(w):
    t = w.base.tables[0]
    plan = __import__("snapstore.ops.snapshot", fromlist=["plan_snapshot"]).plan_snapshot(
        w.src, __import__("snapstore.ops.snapshot", fromlist=["Selection"]).Selection(tables=[t.id]))
    from snapstore.ops.snapshot import SnapshotOptions, take_snapshot

    res = take_snapshot(w.store, w.src, plan, SnapshotOptions(attachments=False, now=w.now, full_every=None))
    f = feed_of(res, w.base_id)
    assert f["mode"] == "full" and "table selection" in f["reason"] and w.base_id not in res.info.doc.get("feed", {})
    nxt = w.snap()
    assert feed_of(nxt, w.base_id)["mode"] == "full" and "no feed baseline" in feed_of(nxt, w.base_id)["reason"]


def test_a_run_warns_when_the_hook_expires_before_the_next_expected_run(w):
    w.clock.advance(8 * 86400)  # runs a week apart: the hook died in between
    res = w.snap()
    f = feed_of(res, w.base_id)
    assert f["mode"] == "full" and "expired" in f["reason"]
    assert f["warning"] and "before the next run" in f["warning"]


def test_cli_snapshot_summary_json_and_show_report_the_feed(tmp_path):
    import time

    from click.testing import CliRunner

    from snapstore.cli import main

    w = World(tmp_path, records=150, tables=2, start=time.time())  # the CLI judges expiry by the wall clock
    assert w.enable()[0]["ok"]
    w.snap()

    env = {"AIRTABLE_TOKEN": w.emu.token, "AIRTABLE_API_URL": w.emu.url, "SNAPSTORE_STORE": str(w.store.location)}
    w.emu.churn(seed=9, edit_share=0.02, add_share=0.0, delete_share=0.0)
    r = CliRunner().invoke(main, ["snapshot", "--no-progress", "--no-attachments"], env=env)
    assert r.exit_code == 0, r.output
    assert f"({w.base_id}): feed: 1 payload(s)" in r.output
    r = CliRunner().invoke(main, ["snapshot", "--no-progress", "--no-attachments", "--changes", "full", "--json"],
                           env=env)
    doc = json.loads(r.stdout)
    (f,) = doc["feed"]
    assert f["mode"] == "full" and f["reason"] == "--changes full" and f["missed"] == 0
    r = CliRunner().invoke(main, ["show"], env=env)
    assert "the feed missed 0 record(s)" in r.output
    r = CliRunner().invoke(main, ["snapshot", "--full-every", "soon"], env=env)
    assert r.exit_code == 2 and "not a duration" in r.output
    w.close()
