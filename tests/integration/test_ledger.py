"""The API call ledger: what snapstore counts equals what the emulator served, run records from
several runs (machines) add up in the store, the budget refuses a run before its first request."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore import ledger
from snapstore.cli import main
from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.store import Store
from tests.notify_receiver import receiver

SCALE = 50
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty", str(30 / SCALE),
          "--retry-backoff", "0.001", "--max-retries", "2", "--no-progress"]
PASSWORD = "ledger-test-password"
#: emulator routes that are not API calls (attachment files come from the content host)
NOT_API = {"content"}


@pytest.fixture
def emu():
    ws = generate_workspace(seed=7, bases=2, tables_per_base=2, records_per_table=250, comment_share=0.2)
    with Emulator(ws, clock=ScaledClock(SCALE)) as e:
        yield e


def run(emu, store, *args):
    env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
           "SNAPSTORE_PASSWORD": PASSWORD, "SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def served(emu) -> tuple[int, dict[str, int]]:
    c = emu.counters.snapshot()
    total = sum(v["requests"] for k, v in c["routes"].items() if k not in NOT_API)
    return total, {b: v["requests"] for b, v in c["bases"].items()}


def test_counts_equal_the_emulators_own_counters(emu, tmp_path):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    emu.counters.reset()
    # 429s and 503s are requests too: Airtable counts what it answered
    emu.faults.add(route="list_records", kind="503", rate=0.1, seed=3)
    assert run(emu, store, "snapshot", "--comments", *LIMITS).exit_code == 0
    emu.faults.clear()
    emu.churn(edit_share=0.05, add_share=0.01, delete_share=0.01, seed=1)
    assert run(emu, store, "snapshot", "--comments", *LIMITS).exit_code == 0
    total, by_base = served(emu)
    assert emu.counters.snapshot()["statuses"].get("503", 0) > 0

    st = Store.open(store, password=PASSWORD)
    u = ledger.usage(st.backend)
    assert u.runs == 2 and u.total == total
    assert {b: n for b, n in u.by_base.items() if b != ledger.NO_BASE} == by_base
    doc = json.loads(run(emu, store, "stats", "--api", "--json", "--plan", "free").stdout)
    assert doc["api"][0]["requests"] == total and doc["api"][0]["budget"] == 1000
    assert doc["api"][0]["by_base"] == {**by_base, ledger.NO_BASE: total - sum(by_base.values())}


def test_two_machines_add_up(emu, tmp_path):
    """Two processes' runs are two objects in the store: the month's count is their sum."""
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    emu.counters.reset()
    assert run(emu, store, "snapshot", *LIMITS).exit_code == 0
    st = Store.open(store, password=PASSWORD)
    first = ledger.usage(st.backend).total
    # another machine's run, written as it would write it
    ledger.record(st.backend, ledger.Run(verb="snapshot", time=ledger.now(), exit_code=0, requests={"appX": 7},
                                         host="other-machine"))
    u = ledger.usage(st.backend)
    assert u.runs == 2 and u.total == first + 7 == served(emu)[0] + 7


def test_a_run_that_would_cross_the_budget_is_refused_before_its_first_request(emu, tmp_path):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    assert run(emu, store, "snapshot", *LIMITS).exit_code == 0
    used = ledger.usage(Store.open(store, password=PASSWORD).backend).total
    emu.counters.reset()
    before = sorted(p.name for p in (store / "snapshots").iterdir())
    r = run(emu, store, "snapshot", *LIMITS, "--api-budget", str(used + 1))
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "would cross the API budget" in r.output and "--over-budget" in r.output
    assert served(emu)[0] == 0  # not one request
    assert sorted(p.name for p in (store / "snapshots").iterdir()) == before
    r = run(emu, store, "snapshot", *LIMITS, "--api-budget", str(used + 1), "--over-budget")
    assert r.exit_code == 0
    assert served(emu)[0] > 0
    # the plan's budget: far from crossing
    assert run(emu, store, "snapshot", *LIMITS, "--plan", "free").exit_code == 0


def test_crossing_80_percent_notifies_once(emu, tmp_path):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    assert run(emu, store, "snapshot", *LIMITS).exit_code == 0
    used = ledger.usage(Store.open(store, password=PASSWORD).backend).total
    budget = int(used * 2 / 0.8 * 0.95)  # the second run takes the month from 40-ish% to 80+%
    with receiver() as hook:
        r = run(emu, store, "snapshot", *LIMITS, "--api-budget", str(budget), "--over-budget",
                "--notify", hook.url())
        assert r.exit_code == 0, r.output
        [n] = hook.notifications()
        assert "of the API budget used" in n["title"] and f"of {budget:,}" in n["message"]
