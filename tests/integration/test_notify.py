"""Notifications (apprise, to a local JSON webhook) and the Healthchecks-style ping: sent on
failure, partial, recovery and on request on success; what they say; never a secret or a record's
content; an undeliverable one is logged and the exit code stays the run's."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from tests.notify_receiver import receiver

SCALE = 50
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty", str(30 / SCALE),
          "--retry-backoff", "0.001", "--max-retries", "1", "--no-progress"]
PASSWORD = "notify-test-password-xyz"


@pytest.fixture
def emu():
    ws = generate_workspace(seed=11, bases=2, tables_per_base=2, records_per_table=40)
    with Emulator(ws, clock=ScaledClock(SCALE)) as e:
        yield e


@pytest.fixture
def hook():
    with receiver() as r:
        yield r


def run(emu, store, *args):
    env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
           "SNAPSTORE_PASSWORD": PASSWORD, "SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _record_texts(emu) -> list[str]:
    return [str(v) for b in emu.workspace.bases for t in b.tables for r in list(t.records.values())[:20]
            for v in r.cells.values() if isinstance(v, str) and len(v) > 8]


def test_partial_then_recovery_notifies_with_base_reason_and_exit_code(emu, hook, tmp_path):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    bad = emu.workspace.bases[0]
    emu.faults.add(route="get_schema", kind="503", rate=1.0, base_id=bad.id)
    r = run(emu, store, "snapshot", "-q", *LIMITS, "--notify", hook.url(), "--ping-url",
            f"http://127.0.0.1:{hook.port}/ping")
    assert r.exit_code == 3
    # the -q line names the base that failed and why
    assert bad.id in r.output and "503" in r.output
    [n] = hook.notifications()
    assert n["type"] == "warning" and "PARTIAL" in n["title"] and str(store) in n["title"]
    assert f"base {bad.id}" in n["message"] and "503" in n["message"] and "exit code: 3" in n["message"]
    assert "snapstore show" in n["message"]
    assert hook.pings() == ["/ping/start", "/ping/3"]

    emu.faults.clear()
    r = run(emu, store, "snapshot", "-q", *LIMITS, "--notify", hook.url())
    assert r.exit_code == 0, r.output
    n = hook.notifications()[-1]
    assert len(hook.notifications()) == 2 and "recovered" in n["title"] and "exit code: 0" in n["message"]

    # a success after a success: nothing, unless asked
    assert run(emu, store, "snapshot", "-q", *LIMITS, "--notify", hook.url()).exit_code == 0
    assert len(hook.notifications()) == 2
    assert run(emu, store, "snapshot", "-q", *LIMITS, "--notify", hook.url(), "--notify-on", "success").exit_code == 0
    assert len(hook.notifications()) == 3 and "ok" in hook.notifications()[-1]["title"]

    everything = json.dumps([*hook.notifications(), *[b.decode() for _p, b in hook.got]])
    assert emu.token not in everything and PASSWORD not in everything
    assert not [t for t in _record_texts(emu) if t in everything]


def test_failure_of_any_writing_verb_notifies_the_cli_line(emu, hook, tmp_path):
    store = tmp_path / "store"
    r = run(emu, store, "verify", "--notify", hook.url())  # no store: exit 10
    assert r.exit_code == 10
    [n] = hook.notifications()
    assert n["type"] == "failure" and "verify FAILED" in n["title"]
    assert "no store at" in n["message"] and "exit code: 10" in n["message"]


def test_notify_from_the_config_file(emu, hook, tmp_path):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'notify = ["{hook.url()}"]\nnotify_on = ["failure", "success"]\n')
    r = run(emu, store, "forget", "--keep-last", "1", "--config", str(cfg))
    assert r.exit_code == 0, r.output
    [n] = hook.notifications()
    assert "forget ok" in n["title"]


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_undeliverable_notification_is_logged_and_keeps_the_exit_code(emu, tmp_path, caplog):
    store = tmp_path / "store"
    assert run(emu, store, "init").exit_code == 0
    emu.faults.add(route="get_schema", kind="503", rate=1.0, base_id=emu.workspace.bases[0].id)
    port = _dead_port()
    r = run(emu, store, "snapshot", "-q", *LIMITS, "--notify", f"json://127.0.0.1:{port}/x",
            "--ping-url", f"http://127.0.0.1:{port}/ping")
    assert r.exit_code == 3
    assert "could not be delivered" in caplog.text and "ping http://127.0.0.1 failed" in caplog.text
    emu.faults.clear()
    r = run(emu, store, "snapshot", "-q", *LIMITS, "--notify", f"json://127.0.0.1:{port}/x")
    assert r.exit_code == 0


def test_unknown_event_is_a_usage_error(emu, tmp_path):
    r = run(emu, tmp_path / "s", "prune", "--notify-on", "sometimes")
    assert r.exit_code == 2 and "'sometimes' is not an event" in r.output
