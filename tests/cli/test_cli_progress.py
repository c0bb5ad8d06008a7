"""Progress people can read: the live display fits the terminal (driven through a
pseudo-terminal of 70 columns), shows a 429 pause with its reason and the seconds left, the
retries, and an ETA from the parent snapshot's counts; off the terminal and with -q, nothing."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from fcntl import ioctl
from itertools import chain, repeat
from types import SimpleNamespace

from snapstore.commands.progress import Progress, duration
from snapstore.emulator import Emulator, generate_workspace
from snapstore.source import AirtableSource

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def drawn_lines(raw: str) -> list[str]:
    """What a terminal shows line by line: escape sequences dropped, split at \\n and \\r."""
    return [x for x in re.split(r"[\r\n]", ANSI.sub("", raw)) if x.strip()]


def _plan(counts: dict[str, int | None]):
    tables = [SimpleNamespace(table_id=t, previous_records=n) for t, n in counts.items()]
    base = SimpleNamespace(base_id="appA", name="Sales and Marketing, the big base")
    return SimpleNamespace(tables=[(base, t) for t in tables])


def test_a_429_pause_shows_its_reason_and_seconds_left_within_70_columns():
    src = AirtableSource("patX", "http://127.0.0.1:9")
    out = io.StringIO()
    p = Progress(src, stream=out, width=70, plan=_plan({"tbl1": 1000, "tbl2": 1000}), clock=chain([0.0], repeat(10.0)).__next__)
    p("table_start", {"base_id": "appA", "table_id": "tbl1", "name": "Deals with a very long table name indeed"})
    p("table_page", {"base_id": "appA", "table_id": "tbl1", "records": 500})
    src.throttle.penalize("appA", 28)
    src.stats.retried(network=True)
    text = "\n".join(p.lines())
    assert "paused 28 s: Airtable said 429" in text and "Sales and Marketing" in text
    assert "1 retries" in text
    # 500 of 2,000 records in 10 s: 1,500 left at 50/s
    assert "ETA 30s" in text and "500 of 1,000 records" in text
    p.draw()
    shown = out.getvalue().splitlines()
    assert shown and max(len(x) for x in shown) <= 70, shown
    assert any("paused 28 s" in x for x in shown)


def test_no_eta_for_a_table_never_snapshotted():
    src = AirtableSource("patX", "http://127.0.0.1:9")
    p = Progress(src, stream=io.StringIO(), plan=_plan({"tbl1": 1000, "tbl2": None}))
    p("table_start", {"base_id": "appA", "table_id": "tbl1", "name": "Deals"})
    p("table_page", {"base_id": "appA", "table_id": "tbl1", "records": 500})
    assert "ETA" not in p.lines()[0]


def test_durations_read_as_time():
    assert [duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]


def _run_on_pty(args: list[str], env: dict, cols: int = 70) -> tuple[int, str, str]:
    """Run snapstore with stderr on a pseudo-terminal of ``cols`` columns; (exit code, what the
    terminal received, stdout)."""
    master, slave = pty.openpty()
    ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    env = {k: v for k, v in {**os.environ, **env}.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm"
    proc = subprocess.Popen([sys.executable, "-c", "from snapstore.entry import run; run()", *args], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    got = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    stdout = proc.stdout.read().decode()
    code = proc.wait(60)
    os.close(master)
    return code, got.decode(errors="replace"), stdout


def test_snapshot_progress_on_a_70_column_terminal(tmp_path):
    # 3 tables of 500 records: 15 list requests at 5/s (Airtable's own pace), about 3 s of display
    ws = generate_workspace(seed=9, bases=1, tables_per_base=3, records_per_table=500, attachment_share=0.0,
                            link_share=0.0, comment_share=0.0)
    with Emulator(ws) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(tmp_path / "s"),
               "SNAPSTORE_CONFIG": ""}
        code, term, stdout = _run_on_pty(["snapshot", "--no-attachments"], env)
    assert code == 0, term
    lines = drawn_lines(term)
    assert any(x.startswith("snapshot: ") and "tables" in x for x in lines), lines  # it was drawn
    assert max(len(x) for x in lines) <= 70, [x for x in lines if len(x) > 70]
    assert "snapshot" in stdout and "complete" in stdout  # the summary stays on stdout


def test_quiet_on_a_terminal_draws_nothing(tmp_path):
    ws = generate_workspace(seed=9, bases=1, tables_per_base=1, records_per_table=50)
    with Emulator(ws) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(tmp_path / "s"),
               "SNAPSTORE_CONFIG": ""}
        code, term, stdout = _run_on_pty(["snapshot", "-q"], env)
    assert code == 0 and term == "" and stdout == ""
