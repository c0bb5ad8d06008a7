"""Processes of snapstore on one machine share each base's rate: two snapshots of one base at once
stay inside its 5 requests per second together, and a 429 seen by one pauses the other. Times are
the emulator's clock (x10) and explicit numbers in the unit tests: nothing asserts on wall time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.source.shared_budget import SharedBudget
from snapstore.source.throttle import Throttle

SCALE = 10
OTHER_TOKEN = "patSECONDPROCESS.x"


# ---- the file, with explicit times

def test_the_window_is_shared_between_budgets_of_one_folder(tmp_path):
    a, b = SharedBudget(tmp_path, "http://api"), SharedBudget(tmp_path, "http://api")
    slots = [a.reserve("appX", 5, 100.0)[1] for _ in range(3)] + [b.reserve("appX", 5, 100.0)[1] for _ in range(2)]
    assert all(s == 100.0 for s in slots)
    wait, slot = b.reserve("appX", 5, 100.1)
    assert slot is None and wait == pytest.approx(0.005)  # all five in flight: look again shortly
    a.release("appX", 100.0, 101.02)  # answered: it ages out one window after its response
    wait, slot = b.reserve("appX", 5, 100.5)
    assert slot is None and wait == pytest.approx(0.52)
    assert b.reserve("appX", 5, 101.05) == (0.0, 101.05)
    # another base, another endpoint: their own windows
    assert a.reserve("appY", 5, 100.5) == (0.0, 100.5)
    assert SharedBudget(tmp_path, "http://other").reserve("appX", 5, 100.5) == (0.0, 100.5)


def test_a_pause_written_by_one_holds_for_all(tmp_path):
    a, b = SharedBudget(tmp_path, "http://api"), SharedBudget(tmp_path, "http://api")
    a.pause("appX", 130.0)
    assert b.reserve("appX", 5, 100.0) == (30.0, None)
    a.pause("appX", 110.0)  # a shorter pause never shortens a longer one
    assert b.reserve("appX", 5, 129.0) == (1.0, None)
    assert b.reserve("appX", 5, 130.0) == (0.0, 130.0)


def test_slots_of_a_dead_process_and_a_damaged_file_are_dropped(tmp_path):
    a = SharedBudget(tmp_path, "http://api")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    path = a._path("appX")
    path.write_text(json.dumps({"slots": [[pid, 100.0, float("inf")]] * 5}))
    assert a.reserve("appX", 5, 100.1) == (0.0, 100.1)
    path.write_text('{"slots": [[1, 2')  # torn by a kill mid-write
    assert a.reserve("appX", 5, 100.2) == (0.0, 100.2)


def test_a_throttle_takes_its_place_in_the_shared_window(tmp_path):
    now = [1000.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    other = SharedBudget(tmp_path, "http://api")
    for _ in range(5):  # another process's five requests, answered: they leave the window at 1000.5
        other.release("appX", other.reserve("appX", 5, 1000.0)[1], 1000.5)
    t = Throttle(rate_base=5, rate_token=50, clock=lambda: now[0], sleep=sleep, cold_start=False,
                 shared=SharedBudget(tmp_path, "http://api"))
    ticket = t.acquire("appX")
    assert now[0] == pytest.approx(1000.5) and sum(slept) == pytest.approx(0.5)
    ticket.done()
    t.penalize("appX", 30)  # a 429 here pauses the other process too
    assert other.reserve("appX", 5, now[0])[0] == pytest.approx(30, abs=0.1)


# ---- two processes against the emulator

def _snapshot_process(emu, store, cache, token) -> subprocess.Popen:
    env = {**os.environ, "AIRTABLE_TOKEN": token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
           "SNAPSTORE_CACHE": str(cache)}
    env.pop("SNAPSTORE_CONFIG", None)
    env.pop("AIRTABLE_TOKEN_FILE", None)
    args = ["snapshot", "--comments", "--no-progress", "--rate-limit-base", str(5 * SCALE), "--rate-limit-token",
            str(50 * SCALE), "--penalty", str(30 / SCALE), "--retry-backoff", "0"]
    return subprocess.Popen([sys.executable, "-c", "from snapstore.entry import run; run()", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_share_a_base_and_its_pauses(tmp_path):
    ws = generate_workspace(seed=8, bases=1, tables_per_base=1, records_per_table=1500, attachment_share=0.0,
                            comment_share=0.05)
    clock = ScaledClock(SCALE)
    with Emulator(ws, clock=clock, tokens={OTHER_TOKEN: None}, penalty=30.0) as emu:
        base = emu.workspace.bases[0].id
        arrivals: list[tuple[float, str | None]] = []  # (emulator time, token) of each request counted
        faults: list[float] = []
        check, record = emu.limiter.check, emu.counters.record

        def counted(token, base_id):
            if base_id == base:
                arrivals.append((clock.now(), token))
            return check(token, base_id)

        def recorded(route, base_id, status, nbytes):
            if status == 429 and base_id == base:
                faults.append(clock.now())
            return record(route, base_id, status, nbytes)

        emu.limiter.check, emu.counters.record = counted, recorded
        # one 429 in the middle of the two runs (about 200 requests of this base in all)
        emu.faults.add(route="list_comments", kind="429", nth=50, base_id=base)
        procs = [_snapshot_process(emu, tmp_path / "a", tmp_path / "cache", emu.token),
                 _snapshot_process(emu, tmp_path / "b", tmp_path / "cache", OTHER_TOKEN)]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        statuses = emu.counters.snapshot()["statuses"]
    # the base's limit held for both together: the only 429 is the one injected
    assert statuses.get("429") == 1 and len(faults) == 1
    times = {tok: [t for t, k in arrivals if k == tok] for tok in (emu.token, OTHER_TOKEN)}
    assert all(len(ts) > 50 for ts in times.values())
    first, last = max(ts[0] for ts in times.values()), min(ts[-1] for ts in times.values())
    assert first < faults[0] < last  # both were running when the 429 came
    # nothing from either process during the 30 s pause one of them was told (after the requests already
    # on the wire when the 429 came: 10 ms at most here, 0.1 s on the emulator's clock)
    during = [(t, k) for t, k in arrivals if faults[0] + 1 < t < faults[0] + 30 * 0.97]
    assert during == [], [(t - faults[0], k == emu.token) for t, k in during]
    assert all(any(t > faults[0] + 30 for t in ts) for ts in times.values())
