"""A feed snapshot meets failures as a full listing does: one base whose requests fail for good gives a
partial snapshot naming its tables (exit 3) while the other bases are kept; webhook routes that answer
503 past every retry cost a full listing (exit 0), not the run. Through the CLI, as a user meets it."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import generate_workspace
from snapstore.feed import manage
from tests.helpers import feed_world
from tests.helpers.feed_world import World, hashes

QUICK = ["--no-progress", "--no-attachments", "--max-retries", "1", "--retry-backoff", "0.001",
         "--rate-limit-base", "1000", "--rate-limit-token", "10000"]


@pytest.fixture
def two(tmp_path, monkeypatch):
    """Two fed bases on an emulator whose clock is the wall clock (the CLI's)."""
    monkeypatch.setattr(feed_world, "generate_workspace", lambda **kw: generate_workspace(**{**kw, "bases": 2}))
    w = World(tmp_path, records=120, tables=2, start=time.time())
    bases = [{"id": b.id, "name": b.name} for b in w.emu.workspace.bases]
    assert all(r["ok"] for r in manage.enable(w.store, w.src, bases, now=w.now()))
    w.env = {"AIRTABLE_TOKEN": w.emu.token, "AIRTABLE_API_URL": w.emu.url, "SNAPSTORE_STORE": str(w.store.location),
             "SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None}
    assert w.cli("snapshot").exit_code == 0  # the baseline
    yield w
    w.close()


def _cli(self, *args: str):
    return CliRunner().invoke(main, [*args, *QUICK, "--json"], env=self.env)


World.cli = _cli


def _latest(w):
    return w.store.resolve("latest")


def test_one_failing_base_gives_a_partial_snapshot_naming_its_tables(two):
    w = two
    ok, bad = (b.id for b in w.emu.workspace.bases)
    w.emu.churn(seed=5, edit_share=0.05, add_share=0.0, delete_share=0.0)
    w.emu.faults.add(route="list_records", kind="503", rate=1.0, base_id=bad)
    r = w.cli("snapshot")
    assert r.exit_code == 3, r.output
    doc = json.loads(r.stdout)
    # the failing base's tables are named as failed; the healthy base was fed and kept, table by table
    failed = {t["table_id"] for t in doc["tables"] if t["status"] == "failed"}
    assert failed == {t.id for t in w.emu.workspace.base(bad).tables}
    assert all(bad in e and "503" in e for e in doc["errors"]) and len(doc["errors"]) == len(failed)
    assert feed_of_doc(doc, ok)["mode"] == "feed" and feed_of_doc(doc, ok)["reread_changed"] > 0
    assert {t["status"] for t in doc["tables"] if t["base_id"] == ok} == {"done"}
    # with the fault gone, the next run lists the failing base in full (no feed state was kept for it)
    w.emu.faults.clear()
    r = w.cli("snapshot")
    assert r.exit_code == 0, r.output
    full = w.cli("snapshot", "--changes", "full")
    assert full.exit_code == 0
    assert hashes(w.store, _latest(w)) == hashes(w.store, w.store.resolve("latest~1"))


@pytest.mark.parametrize("routes", [("webhook_list", "webhook_payloads"), ("webhook_payloads",)])
def test_persistent_503s_on_the_webhook_routes_cost_a_full_listing(two, routes):
    w = two
    w.emu.churn(seed=6, edit_share=0.05, add_share=0.0, delete_share=0.0)
    for route in routes:
        w.emu.faults.add(route=route, kind="503", rate=1.0)
    r = w.cli("snapshot")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for b in w.emu.workspace.bases:
        f = feed_of_doc(doc, b.id)
        assert f["mode"] == "full" and "failed" in f["reason"] and "503" in f["reason"], f
    w.emu.faults.clear()
    w.emu.churn(seed=7, edit_share=0.05, add_share=0.0, delete_share=0.0)
    fed = json.loads(w.cli("snapshot").stdout)
    full = w.cli("snapshot", "--changes", "full")
    assert full.exit_code == 0
    assert hashes(w.store, _latest(w)) == hashes(w.store, w.store.resolve("latest~1"))
    # payloads read failing with the hooks listed: a baseline at the hook's cursor, so the feed resumes
    # at once; hooks unlisted: no state, a second listing first
    modes = {feed_of_doc(fed, b.id)["mode"] for b in w.emu.workspace.bases}
    assert modes == ({"feed"} if routes == ("webhook_payloads",) else {"full"}), fed["feed"]


def feed_of_doc(doc: dict, base_id: str) -> dict:
    return next(f for f in doc["feed"] if f["base_id"] == base_id)



def test_a_cursor_gap_the_clients_clock_did_not_see_falls_back(two):
    """The service's clock jumps 8 days (the machine's does not): the payloads made before are gone,
    and reading from the stored cursor returns none. The hook's cursorForNextPayload is ahead: a gap."""
    w = two
    w.emu.churn(seed=8, edit_share=0.05, add_share=0.0, delete_share=0.0)
    w.clock.advance(5 * 86400)
    for b in w.emu.workspace.bases:  # alive (refreshed), but nobody read its payloads
        (h,) = w.emu.webhooks.hooks(b.id)
        w.api("POST", f"bases/{b.id}/webhooks/{h['id']}/refresh")
        assert h["cursorForNextPayload"] > 1
    w.clock.advance(3 * 86400)
    r = w.cli("snapshot")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    for b in w.emu.workspace.bases:
        f = feed_of_doc(doc, b.id)
        assert f["mode"] == "full" and "gap cannot be proven empty" in f["reason"] and f["payloads"] == 0, f
    full = w.cli("snapshot", "--changes", "full")
    assert full.exit_code == 0 and feed_of_doc(json.loads(full.stdout), b.id)["missed"] == 0
    assert hashes(w.store, _latest(w)) == hashes(w.store, w.store.resolve("latest~1"))
