"""`snapstore snapshot`, `check`, `log`, `show` end to end against the emulator (clock x50)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.commands.progress import Progress
from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_LOCKED
from snapstore.ops.snapshot import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, TableResult
from snapstore.source import AirtableSource
from snapstore.store import Store

SCALE = 50
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE),
          "--penalty", str(30 / SCALE), "--retry-backoff", "0.001", "--max-retries", "2", "--no-progress"]
WS = dict(seed=3, bases=2, tables_per_base=2, records_per_table=60, attachment_share=0.05, comment_share=0.1)


@pytest.fixture
def emu():
    with Emulator(generate_workspace(**WS), clock=ScaledClock(SCALE), tokens={"patLIMITED.x": None}) as e:
        yield e


def invoke(args: list[str], env: dict | None = None):
    runner = CliRunner()
    return runner.invoke(main, args, env=env or {}, catch_exceptions=False)


def env_for(emu: Emulator, store: Path, **extra) -> dict:
    return {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
            "AIRTABLE_TOKEN_FILE": None, "SNAPSTORE_CONFIG": None, **extra}


def tree(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*") if p.is_file()} \
        if path.exists() else {}


def test_snapshot_log_show_json_and_dry_run(emu, tmp_path):
    store = tmp_path / "store"
    env = env_for(emu, store)
    r = invoke(["snapshot", "--comments", "--tag", "first", *LIMITS], env)
    assert r.exit_code == EXIT_OK, r.output
    assert "complete" in r.output and "requests:" in r.output and "attachments:" in r.output
    logs = list((Store.open(store).private_dir / "logs").glob("snapshot-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "INFO" in text and "listing" in text and emu.token not in text

    # second run, machine-readable: nothing changed
    r = invoke(["snapshot", "--comments", "--json", *LIMITS], env)
    assert r.exit_code == EXIT_OK
    doc = json.loads(r.stdout)
    assert doc["status"] == "complete" and doc["exit_code"] == 0
    assert all(t["new"] == t["changed"] == t["deleted"] == 0 for t in doc["tables"])
    assert doc["attachments"]["new"] == 0 and doc["attachments"]["reused"] > 0
    assert doc["requests"]["rate_limited_429"] == 0

    r = invoke(["log"], env)
    lines = r.output.strip().splitlines()
    assert lines[0].split()[:3] == ["id", "time", "(UTC)"] and lines[-1].startswith("changes: +new")
    rows = [x for x in lines[1:-1] if "complete" in x]
    assert len(rows) == 2 and "[first]" in "\n".join(lines[lines.index(rows[1]):-1])
    log_doc = json.loads(invoke(["log", "--json"], env).stdout)
    assert [s["status"] for s in log_doc] == ["complete", "complete"]
    assert log_doc[1]["new"] == 4 * 60 and log_doc[0]["new"] == 0

    shown = invoke(["show", "latest~1"], env).output
    assert log_doc[1]["id"] in shown and "records" in shown
    for b in emu.workspace.bases:
        assert b.id in shown and all(t.id in shown for t in b.tables)
    info = json.loads(invoke(["show", log_doc[0]["id"], "--json"], env).stdout)
    assert info["id"] == log_doc[0]["id"] and info["status"] == "complete"
    assert invoke(["show", "nope"], env).exit_code == EXIT_ERROR

    # dry run: estimates from the previous snapshot, no record read, nothing written
    before = tree(store)
    emu.counters.reset()
    r = invoke(["snapshot", "--dry-run", "--rate-limit-base", "5", "--rate-limit-token", "50"],
               {**env, "AIRTABLE_API_URL": emu.url})
    assert r.exit_code == EXIT_OK, r.output
    assert "dry run" in r.output and "estimate: 6 requests" in r.output  # 1 list + 1 schema... per base
    assert "list_records" not in emu.counters.snapshot()["routes"]
    assert tree(store) == before
    doc = json.loads(invoke(["snapshot", "--dry-run", "--json", *LIMITS], env).stdout)
    assert doc["complete"] and doc["requests"] == 6 and doc["tables"] == 4


def test_dry_run_without_previous_snapshot_says_unknown(emu, tmp_path):
    store = tmp_path / "nostore"
    r = invoke(["snapshot", "--dry-run", *LIMITS], env_for(emu, store))
    assert r.exit_code == EXIT_OK and "unknown for 4 table(s)" in r.output
    assert not store.exists()


@pytest.mark.parametrize("case", ["bad_token", "invisible_base", "unknown_table", "unreachable", "no_token",
                                  "token_in_config"])
def test_errors_give_one_line_and_leave_the_store_untouched(emu, tmp_path, case):
    store = tmp_path / "store"
    env = env_for(emu, store)
    assert invoke(["snapshot", *LIMITS], env).exit_code == EXIT_OK
    before = tree(store)
    fresh = tmp_path / "fresh"
    other = emu.workspace.bases[1].id
    emu.grants["patLIMITED.x"] = {emu.workspace.bases[0].id}
    args, extra = ["snapshot", *LIMITS], {}
    expect = {
        "bad_token": "the token was rejected (401)",
        "invisible_base": f"no base '{other}' visible to this token",
        "unknown_table": "no table 'Nope' in the selected bases",
        "unreachable": "cannot reach",
        "no_token": "no Airtable token",
        "token_in_config": "the token must not be stored in the config file",
    }[case]
    if case == "bad_token":
        extra["AIRTABLE_TOKEN"] = "patWRONG.0000"
    elif case == "invisible_base":
        extra["AIRTABLE_TOKEN"] = "patLIMITED.x"
        args += ["--base", other]
    elif case == "unknown_table":
        args += ["--table", "Nope"]
    elif case == "unreachable":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        extra["AIRTABLE_API_URL"] = f"http://127.0.0.1:{s.getsockname()[1]}"
        s.close()
    elif case == "no_token":
        extra["AIRTABLE_TOKEN"] = None
    elif case == "token_in_config":
        cfg = tmp_path / "cfg.toml"
        cfg.write_text('token = "patOOPS"\n')
        args += ["--config", str(cfg)]
    for target in (store, fresh):
        r = invoke([*args, "--store", str(target)], {**env, **extra})
        usage = case in ("invisible_base", "unknown_table", "token_in_config")
        assert r.exit_code == (2 if usage else EXIT_ERROR), r.output
        assert expect in r.output
        err = [x for x in r.output.splitlines() if x.startswith("Error")]
        assert len(err) == 1 and expect in err[0] and "Traceback" not in r.output, r.output
        assert emu.token not in r.output
    assert tree(store) == before
    assert not fresh.exists()


def test_permanently_failing_base_gives_partial_and_exit_3(emu, tmp_path):
    store = tmp_path / "store"
    env = env_for(emu, store)
    bad = emu.workspace.bases[0]
    emu.faults.add(route="list_records", kind="503", rate=1.0, base_id=bad.id)
    r = invoke(["snapshot", *LIMITS], env)
    assert r.exit_code == EXIT_PARTIAL, r.output
    assert "PARTIAL (2 missing)" in r.output and "503" in r.output
    shown = invoke(["show", "latest"], env).output
    assert "status  partial" in shown and shown.count("MISSING") == 2
    assert "partial" in invoke(["log"], env).output
    emu.faults.clear()
    assert invoke(["snapshot", *LIMITS], env).exit_code == EXIT_OK


def test_config_file_and_token_file(emu, tmp_path):
    store = tmp_path / "from-config"
    token_file = tmp_path / "token"
    token_file.write_text(emu.token + "\n")
    b0, b1 = emu.workspace.bases
    cfg = tmp_path / "snapstore.toml"
    cfg.write_text(
        f'store = "{store}"\napi_url = "{emu.url}"\ntoken_file = "{token_file}"\nbase = ["{b0.name}"]\n'
        f"rate_limit_base = {5 * SCALE}\nrate_limit_token = {50 * SCALE}\npenalty = {30 / SCALE}\n"
        "progress = false\n[snapshot]\ncomments = true\nnote = \"from the config\"\ntag = [\"nightly\"]\n"
    )
    env = {"AIRTABLE_TOKEN": None, "AIRTABLE_API_URL": None, "SNAPSTORE_STORE": None, "AIRTABLE_TOKEN_FILE": None}
    r = invoke(["snapshot", "--config", str(cfg)], env)
    assert r.exit_code == EXIT_OK, r.output
    info = Store.open(store).resolve("latest")
    assert [b.base_id for b in info.bases] == [b0.id] and info.note == "from the config"
    assert info.tags == ["nightly"]
    # flags override the file
    r = invoke(["snapshot", "--config", str(cfg), "--base", b1.id, "--note", "flag"], env)
    assert r.exit_code == EXIT_OK, r.output
    info = Store.open(store).resolve("latest")
    assert [b.base_id for b in info.bases] == [b1.id] and info.note == "flag"
    # the environment names the config too; unknown keys in the command's section are refused
    cfg.write_text(cfg.read_text() + "bogus = 1\n")
    r = invoke(["snapshot"], {**env, "SNAPSTORE_CONFIG": str(cfg)})
    assert r.exit_code == 2 and "unknown key 'bogus'" in r.output


def test_check_verdicts(emu, tmp_path):
    env = env_for(emu, tmp_path / "unused")
    r = invoke(["check", *LIMITS[:6], "--comments"], env)
    assert r.exit_code == EXIT_OK, r.output
    assert "token ok" in r.output and r.output.count("ok  ") == 2
    emu.grants["patLIMITED.x"] = {emu.workspace.bases[0].id}
    other = emu.workspace.bases[1].id
    r = invoke(["check", *LIMITS[:6], "--base", other], {**env, "AIRTABLE_TOKEN": "patLIMITED.x"})
    assert r.exit_code == 2 and f"no base '{other}' visible to this token" in r.output
    doc = json.loads(invoke(["check", *LIMITS[:6], "--json"], {**env, "AIRTABLE_TOKEN": "patLIMITED.x"}).stdout)
    assert doc["ok"] and [b["base_id"] for b in doc["bases"]] == [emu.workspace.bases[0].id]
    r = invoke(["check", *LIMITS[:6]], {**env, "AIRTABLE_TOKEN": "patNOPE"})
    assert r.exit_code == EXIT_ERROR and "the token was rejected (401)" in r.output
    assert not (tmp_path / "unused").exists()


def test_progress_display_redraws_per_table():
    src = AirtableSource("patX", "http://127.0.0.1:9")
    out = io.StringIO()
    p = Progress(src, stream=out, width=100)
    p("base_start", {"base_id": "appA", "name": "Sales"})
    p("table_start", {"base_id": "appA", "table_id": "tbl1", "name": "Deals"})
    p("table_page", {"base_id": "appA", "table_id": "tbl1", "records": 300})
    p.draw()
    assert "Sales / Deals: 300 records" in out.getvalue()
    p("table_done", {"base_id": "appA", "table_id": "tbl1", "result": TableResult("appA", "Sales", "tbl1", "Deals",
                                                                                   records=300)})
    p.draw()
    assert "1/1 tables" in out.getvalue()
    p("start", {"bases": 1, "tables": 3})
    assert p.lines()[0].startswith("snapshot: 1/3 tables, 300 records")


def _cli_process(emu: Emulator, store: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store)}
    code = "from snapstore.entry import run; run()"
    return subprocess.Popen([sys.executable, "-c", code, "snapshot", "--no-progress", *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_run_leaves_the_store_consistent_and_the_next_run_completes(tmp_path, sig):
    # a clock x5 (25 requests/s per base) and 6 pages per table, so the run lasts about a second
    ws = generate_workspace(seed=4, bases=2, tables_per_base=2, records_per_table=600, attachment_share=0.0,
                            comment_share=0.0, link_share=0.0)
    store = tmp_path / "store"
    Store.open(store, create=True)
    limits = ["--rate-limit-base", "25", "--rate-limit-token", "250", "--penalty", "6"]
    with Emulator(ws, clock=ScaledClock(5)) as emu:
        proc = _cli_process(emu, store, *limits)
        deadline = time.monotonic() + 20
        while emu.counters.requests("list_records") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert emu.counters.requests("list_records") < 24  # it was stopped half-way
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == EXIT_INTERRUPTED, err
            assert "interrupted" in err and "nothing committed" in err
            assert Store.open(store).lock_holder() is None
        assert Store.open(store).list_snapshots() == []
        # the next run completes; a lock left by a killed process is stale and broken
        r = invoke(["snapshot", "--store", str(store), *limits, "--no-progress"],
                   {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url})
        assert emu.counters.snapshot()["total"]["429s"] == 0  # the new run waited out the old one's window
    assert r.exit_code == EXIT_OK, r.output
    snaps = Store.open(store).list_snapshots()
    assert len(snaps) == 1 and snaps[0].status == "complete" and snaps[0].records == 2400


def test_a_busy_store_is_reported_and_left_alone(emu, tmp_path):
    store = tmp_path / "store"
    env = env_for(emu, store)
    assert invoke(["snapshot", *LIMITS], env).exit_code == EXIT_OK
    holder = Store.open(store).begin_snapshot(command="another snapshot")
    try:
        before = tree(store)
        r = invoke(["snapshot", *LIMITS], env)
        assert r.exit_code == EXIT_LOCKED and "the store is busy: locked by 'another snapshot'" in r.output
        assert tree(store) == before
    finally:
        holder.abandon()
