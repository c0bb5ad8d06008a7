"""serve's schedules: entries from the config file, when a job is due, a missed run at start, and
SIGTERM stopping serve with a run in progress interrupted as the CLI's is (nothing committed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import UsageError
from snapstore.serve.schedule import parse_jobs
from snapstore.store import Store
from tests.serve_world import LIMITS, PASSWORD, ROOT, TOKEN, cli, free_port


def test_entries_cron_and_intervals():
    jobs = parse_jobs([{"run": "snapshot --base Sales", "cron": "0 2 * * *"}, {"run": "verify", "every": "7d"}])
    t = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
    assert jobs[0].due_after(t) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert jobs[1].due_after(t) == t + timedelta(days=7)
    assert jobs[0].verb == "snapshot" and jobs[1].when == "every 7d"
    # missed: never run, or last run before the last due time
    assert jobs[0].missed(t)
    jobs[0].last = datetime(2026, 2, 28, 2, 0, tzinfo=UTC)
    assert jobs[0].missed(datetime(2026, 3, 1, 2, 30, tzinfo=UTC))
    assert not jobs[0].missed(datetime(2026, 3, 1, 1, 30, tzinfo=UTC))


@pytest.mark.parametrize("entry,words", [
    ({"run": "snapshot"}, "cron"),
    ({"run": "snapshot", "cron": "61 * * * *"}, "not a cron expression"),
    ({"run": "snapshot", "every": "soon"}, "90s, 30m"),
    ({"run": "restore latest", "every": "1d"}, "not 'restore'"),
    ({"cron": "0 2 * * *"}, "run ="),
])
def test_bad_entries_are_usage_errors(entry, words):
    with pytest.raises(UsageError, match=words):
        parse_jobs([entry])


def test_sigterm_stops_serve_and_interrupts_the_run_cleanly(tmp_path):
    ws = generate_workspace(seed=2, bases=1, tables_per_base=2, records_per_table=400)
    with Emulator(ws, clock=ScaledClock(50)) as emu:
        emu.faults.add(route="list_records", kind="slow", rate=1.0, delay=0.5)  # a run that takes a while
        store = tmp_path / "store"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url,
               "SNAPSTORE_PASSWORD": PASSWORD, "SNAPSTORE_SERVE_TOKEN": TOKEN,
               "XDG_STATE_HOME": str(tmp_path / "state")}
        env.pop("SNAPSTORE_CONFIG", None)
        assert cli(env, "init", "--store", str(store)).returncode == 0
        config = tmp_path / "c.toml"
        config.write_text(f'[serve]\nschedule = [{{ run = "snapshot {LIMITS}", every = "1d" }}]\n')
        log = tmp_path / "serve.log"
        with open(log, "wb") as f:
            proc = subprocess.Popen([sys.executable, "-c", "from snapstore.entry import run; run()", "serve",
                                     "--store", str(store), "--config", str(config), "--listen",
                                     f"127.0.0.1:{free_port()}"], env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while emu.counters.requests("list_records") < 2:  # the run is reading
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(90) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
        text = log.read_text()
        assert "run: snapstore snapshot" in text and "exit 130" in text
        st = Store.open(store, password=PASSWORD)
        assert st.list_snapshots() == []  # nothing half-committed
        assert st.lock_holder() is None
