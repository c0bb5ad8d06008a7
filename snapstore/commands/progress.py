"""The one place progress is drawn. The library reports (snapshot events through
``SnapshotOptions.on_event``, the source's request counters and throttle pauses, restore's log
lines); this module renders, with rich: on a terminal a live block that fits the terminal's width
(every line is cut to it, never wrapped), with a line per base and table, an ETA from the parent
snapshot's record counts, the 429 pauses with their reason and the seconds left, and the retries;
elsewhere nothing here (the verb's plain log lines go to stderr instead), and with ``-q`` nothing.
rich honours ``NO_COLOR``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from snapstore import units

if TYPE_CHECKING:
    from snapstore.source import AirtableSource

#: Redraws a second: enough to see a count move, little enough to cost nothing (one small block).
REFRESH_PER_SECOND = 4
#: Table lines drawn at most; the rest are summed up in one line.
MAX_TABLE_LINES = 12


def console(stream=None, *, width: int | None = None, color: str = "auto") -> Console:
    """A console on stderr (stdout stays for results and JSON), the terminal's own width; ``color``
    is ``--color`` (rich itself honours NO_COLOR)."""
    return Console(file=stream or sys.stderr, width=width, highlight=False, soft_wrap=False,
                   no_color=color == "never" or None, force_terminal=True if color == "always" else None)


def line(text: str, style: str | None = None) -> Text:
    """One drawn line: cut to the width with an ellipsis, never wrapped onto the next line."""
    return Text(text, style=style or "", no_wrap=True, overflow="ellipsis")


def duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Per base and table progress of a snapshot, from the run's events: a callable for
    ``SnapshotOptions.on_event``, drawn live on a terminal (``start``/``stop``)."""

    def __init__(self, source: AirtableSource, stream=None, interval: float = 1 / REFRESH_PER_SECOND, *,
                 plan=None, width: int | None = None, clock=time.monotonic, color: str = "auto") -> None:
        self.source = source
        self.console = console(stream, width=width, color=color)
        self.interval = interval
        self.clock = clock
        self.lock = threading.Lock()
        self.tables: dict[tuple[str, str], dict] = {}
        self.bases: dict[str, str] = {}
        self.expected: dict[tuple[str, str], int | None] = {}
        if plan is not None:  # the parent snapshot's counts: the ETA's basis
            for b, t in plan.tables:
                self.bases[b.base_id] = b.name
                self.expected[(b.base_id, t.table_id)] = t.previous_records
        self.att_new = 0
        self.att_scheduled = 0
        self.att_bytes = 0
        self.total = len(self.expected)
        self.t0 = clock()
        self._live: Live | None = None

    def __call__(self, kind: str, info: dict) -> None:
        with self.lock:
            key = (info.get("base_id"), info.get("table_id"))
            if kind == "start":
                self.total = info.get("tables", 0)
            elif kind == "base_start":
                self.bases[info["base_id"]] = info["name"]
            elif kind == "table_start":
                self.tables[key] = {"name": info["name"], "status": "listing", "records": 0, "restarts": 0}
            elif kind == "table_page":
                self.tables[key]["records"] = info["records"]
            elif kind == "table_restart":
                self.tables[key]["restarts"] = info["restarts"]
            elif kind == "table_done":
                self.tables[key].update(status="done", records=info["result"].records)
            elif kind == "table_failed":
                self.tables[key].update(status="FAILED")
            elif kind == "attachments_scheduled":
                self.att_scheduled += info.get("count", 0)
            elif kind == "attachment":
                self.att_new += 1
                self.att_bytes += info.get("bytes") or 0

    # -- what is drawn ---------------------------------------------------------------------

    def eta(self, records: int, elapsed: float) -> str | None:
        """Seconds left at the pace so far, for the records the parent snapshot held (None when a
        table was never snapshotted, or nothing was read yet)."""
        if not self.expected or any(v is None for v in self.expected.values()) or records <= 0:
            return None
        total = sum(self.expected.values())
        left = max(total - records, 0)
        return duration(left * elapsed / records)

    def pauses(self) -> list[str]:
        """The bases (or the token) paused after a 429, with the seconds left."""
        from snapstore.source.throttle import TOKEN_KEY

        out: list[str] = []
        throttle = getattr(self.source, "throttle", None)
        if throttle is None:
            return out
        for base_id in [*self.bases, None]:
            if not throttle.penalties.get(base_id or TOKEN_KEY):
                continue  # a wait of our own pacing, not a penalty: nothing to explain
            left = throttle.paused_for(base_id)
            if left > 0.05:
                who = self.bases.get(base_id, base_id) if base_id else "the token"
                out.append(f"{who}: paused {max(1, round(left))} s: Airtable said 429 (too many requests)")
        return out

    def lines(self) -> list[str]:
        s = self.source.stats.snapshot()
        dt = max(self.clock() - self.t0, 1e-6)
        with self.lock:
            done = sum(1 for t in self.tables.values() if t["status"] != "listing")
            records = sum(t["records"] for t in self.tables.values())
            eta = self.eta(records, dt)
            out = [f"snapshot: {done}/{self.total or len(self.tables)} tables, {records:,} records, "
                   f"{duration(dt)}" + (f", ETA {eta}" if eta else ""),
                   f"  {s['requests']:,} requests" + (f" ({s['requests'] / dt:.1f}/s)" if dt >= 1 else "")
                   + f", {s['rate_limited_429']} x 429, "
                   f"{s['retries']} retries; attachments {self.att_new}/{self.att_scheduled} new "
                   f"({units.size(self.att_bytes)})"]
            listing = [(k, t) for k, t in self.tables.items() if t["status"] == "listing"]
            for (base_id, table_id), t in listing[:MAX_TABLE_LINES]:
                want = self.expected.get((base_id, table_id))
                of = f" of {want:,}" if want else ""
                extra = f", restarted {t['restarts']}x" if t["restarts"] else ""
                out.append(f"  {self.bases.get(base_id, base_id)} / {t['name']}: {t['records']:,}{of} records{extra}")
            if len(listing) > MAX_TABLE_LINES:
                out.append(f"  … and {len(listing) - MAX_TABLE_LINES} more table(s) being listed")
        out += [f"  {p}" for p in self.pauses()]
        return out

    def renderable(self) -> Group:
        rows = self.lines()
        return Group(*(line(r, "bold" if i == 0 else ("yellow" if "paused" in r else None))
                       for i, r in enumerate(rows)))

    def draw(self) -> None:
        """Print the block once (what the live display redraws)."""
        self.console.print(self.renderable())

    # -- live ------------------------------------------------------------------------------

    def start(self) -> Progress:
        self._live = Live(get_renderable=self.renderable, console=self.console, transient=True,
                          refresh_per_second=1 / self.interval, redirect_stdout=False,
                          redirect_stderr=self.console.file is sys.stderr)  # -v lines print above the block
        self._live.start()
        return self

    def stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()


class Activity:
    """What :func:`activity` yields: call it with a line to print above the live line; ``count``
    sets how far the work is (``done`` of ``total``), shown with an ETA at the pace so far."""

    def __init__(self, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.clock, self.t0 = label, clock, clock()
        self.done = self.total = 0
        self.unit = "records"
        self.print: Callable[[str], None] = lambda _text: None

    def __call__(self, text: str) -> None:
        self.print(text)

    def count(self, done: int, total: int, unit: str = "records") -> None:
        self.done, self.total, self.unit = done, total, unit

    def text(self) -> str:
        dt = self.clock() - self.t0
        out = f"{self.label} … {duration(dt)}"
        if self.total:
            out += f", {self.done:,} of {self.total:,} {self.unit}"
            if 0 < self.done < self.total:
                out += f", ETA {duration((self.total - self.done) * dt / self.done)}"
        return out


@contextmanager
def activity(label: str, out, flag: bool | None = None, *, stream=None) -> Iterator[Activity]:
    """A live line with ``label``, the time it has taken and, once the verb calls ``count``, how far
    it is with an ETA, for verbs whose library reports only lines (restore), chunks (export) or
    nothing (import, prune, verify). Yields an :class:`Activity`; everything is a no-op off a
    terminal, with -q or --json. ``out``: the verb's Output; ``flag``: its ``--progress/--no-progress``."""
    act = Activity(label)
    if not wanted(out, flag):
        yield act
        return
    con = console(stream, color=out.color)
    with Live(get_renderable=lambda: line(act.text()), console=con, transient=True,
              refresh_per_second=REFRESH_PER_SECOND, redirect_stdout=False, redirect_stderr=False) as live:
        act.print = lambda text: live.console.print(line(text))
        yield act


def wanted(out, flag: bool | None) -> bool:
    """Draw progress? ``--progress/--no-progress``, else when stderr is a terminal and the verb is
    neither quiet nor printing JSON."""
    if flag is not None:
        return flag and not out.quiet
    return sys.stderr.isatty() and not out.quiet and not out.json
