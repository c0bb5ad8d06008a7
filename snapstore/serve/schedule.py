"""serve's schedules: which command runs when, one run at a time, each exactly as the CLI runs it.

A schedule entry (``[serve] schedule = [...]`` in the config file)::

    { run = "snapshot --base Sales", cron = "0 2 * * *" }     # a cron expression (croniter), UTC
    { run = "verify --read-data-subset 5%", every = "7d" }     # an interval: 90s, 30m, 6h, 7d

Each run is the CLI itself in a child process (``snapstore VERB ... --store S --config F``): the
same library call, log file, exit code, ledger record and notifications as a run from cron, and a
run that crashes cannot take the web page down. The store's lock keeps a run from colliding with
one started elsewhere; here a single worker thread runs one at a time. A run missed while serve
was not running (its last run, from the store's ledger, is older than the last time it was due)
runs once at start, as systemd's ``Persistent=true`` does. On stop (SIGTERM), a run in progress
gets SIGTERM too and is interrupted as the CLI is: nothing half-committed.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from snapstore.errors import UsageError

log = logging.getLogger("snapstore.serve")

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: seconds a stopped run has to finish before it is killed
STOP_GRACE = 60.0


@dataclass
class Job:
    run: str  # the command line after `snapstore`
    cron: str | None = None
    every: timedelta | None = None
    last: datetime | None = None  # last start (from the ledger, then from this process)
    last_code: int | None = None
    last_line: str = ""
    running: bool = False
    next: datetime | None = None
    runs: int = 0

    @property
    def verb(self) -> str:
        return shlex.split(self.run)[0]

    def run_args(self) -> list[str]:
        return shlex.split(self.run)

    @property
    def when(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {_human(self.every)}"

    def due_after(self, t: datetime) -> datetime:
        """The first time after ``t`` the job is due."""
        if self.cron:
            from croniter import croniter

            return croniter(self.cron, t).get_next(datetime)
        return t + self.every  # type: ignore[operator]

    def missed(self, now: datetime) -> bool:
        """Due since its last run (never run: due)."""
        if self.last is None:
            return True
        return self.due_after(self.last) <= now


def _human(d: timedelta | None) -> str:
    s = int(d.total_seconds()) if d else 0
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0 and s >= n:
            return f"{s // n}{unit}"
    return f"{s}s"


def parse_jobs(entries: list) -> list[Job]:
    """The config's schedule entries; a bad one is a usage error naming it."""
    from snapstore.commands.runhook import WRITING_VERBS

    jobs = []
    for e in entries or []:
        if not isinstance(e, dict) or not isinstance(e.get("run"), str) or not e["run"].strip():
            raise UsageError(f"a schedule entry needs run = \"COMMAND ...\": {e!r}")
        verb = shlex.split(e["run"])[0]
        if verb not in WRITING_VERBS - {"restore", "import"}:
            raise UsageError(f"a schedule runs snapshot, forget, prune or verify, not {verb!r}")
        if bool(e.get("cron")) == bool(e.get("every")):
            raise UsageError(f"schedule entry {e['run']!r}: give cron = \"...\" or every = \"...\" (one of them)")
        if e.get("cron"):
            from croniter import croniter

            if not croniter.is_valid(str(e["cron"])):
                raise UsageError(f"schedule entry {e['run']!r}: {e['cron']!r} is not a cron expression")
            jobs.append(Job(e["run"], cron=str(e["cron"])))
        else:
            m = _EVERY.match(str(e["every"]))
            if not m or float(m.group(1)) <= 0:
                raise UsageError(f"schedule entry {e['run']!r}: every = {e['every']!r}; give 90s, 30m, 6h or 7d")
            jobs.append(Job(e["run"], every=timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])))
    return jobs


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Scheduler:
    """Runs the jobs in one worker thread. ``argv_for`` turns a job into the child's argv."""

    jobs: list[Job]
    argv_for: Callable[[Job], list[str]]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    on_done: Callable[[Job], None] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    _child: subprocess.Popen | None = None
    _thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Scheduler:
        t = now()
        for j in self.jobs:
            j.next = t if j.missed(t) else j.due_after(j.last or t)
        self._thread = threading.Thread(target=self._loop, name="snapstore-scheduler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            t = now()
            due = sorted((j for j in self.jobs if j.next and j.next <= t), key=lambda j: j.next)
            if due:
                job = due[0]
                self.run(job)
                job.next = job.due_after(max(now(), job.next or now()) if job.cron else job.last or now())
                continue
            nxt = min((j.next for j in self.jobs if j.next), default=None)
            wait = 60.0 if nxt is None else max(0.05, min(60.0, (nxt - t).total_seconds()))
            self.wake.wait(wait)
            self.wake.clear()

    def run(self, job: Job) -> int:
        """Run ``job`` now (one at a time); its exit code."""
        with self.lock:
            if self.stop_event.is_set():
                return 130
            job.running, job.last = True, now()
            argv = self.argv_for(job)
            log.info("run: snapstore %s", job.run)
            try:
                self._child = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                _out, err = self._child.communicate()
                code = self._child.returncode
            except OSError as e:
                code, err = 1, f"Error: cannot start the run: {e}"
            finally:
                self._child = None
                job.running = False
            job.runs += 1
            job.last_code = code if code >= 0 else 130
            lines = [x for x in (err or "").splitlines() if x.strip()]
            job.last_line = lines[-1].removeprefix("Error: ") if lines and job.last_code else ""
            log.info("done: snapstore %s: exit %s%s", job.run, job.last_code,
                     f": {job.last_line}" if job.last_line else "")
            if self.on_done:
                self.on_done(job)
            return job.last_code

    def run_soon(self, job: Job) -> None:
        """Run ``job`` at the scheduler's next turn (a run in progress finishes first)."""
        job.next = now()
        self.wake.set()

    def stop(self) -> None:
        """Stop scheduling; a run in progress gets SIGTERM (the CLI's clean interruption)."""
        self.stop_event.set()
        self.wake.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.kill()
        if self._thread is not None:
            self._thread.join(STOP_GRACE)


def cli_argv(args: list[str], store: str, config: str | None) -> list[str]:
    """The CLI in a child process: this interpreter, the installed snapstore."""
    argv = [sys.executable, "-c", "from snapstore.entry import run; run()", *args, "--store", store]
    return argv + (["--config", config] if config else [])
