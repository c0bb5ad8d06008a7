"""The run log of a verb that writes one (snapshot): lines are held until the store's log file
exists, copied to stderr when asked, and never hold the token."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class _Buffer(logging.Handler):
    """Holds log records until the run's log file exists (the store is opened after the checks)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of the write: while the live progress runs, that is
    rich's proxy, which prints the line above the drawn block instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def run_logging(token: str, *, to_stderr: bool, verbose: bool) -> Iterator[dict]:
    """Capture the ``snapstore`` loggers for one run; ``to_stderr`` copies INFO lines (DEBUG with
    ``verbose``) to stderr."""
    from snapstore.ops.snapshot import RedactFilter

    root = logging.getLogger("snapstore")
    old_level = root.level
    root.setLevel(logging.DEBUG)
    buf = _Buffer()
    buf.addFilter(RedactFilter([token]))
    root.addHandler(buf)
    stderr_h = None
    if to_stderr:
        stderr_h = logging.StreamHandler(_CurrentStderr())
        stderr_h.setLevel(logging.DEBUG if verbose else logging.INFO)
        stderr_h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        stderr_h.addFilter(RedactFilter([token]))
        root.addHandler(stderr_h)
    state = {"buffer": buf, "file": None}
    try:
        yield state
    finally:
        for h in (buf, stderr_h, state["file"]):
            if h is not None:
                root.removeHandler(h)
                h.close()
        root.setLevel(old_level)


def start_file_log(state: dict, store_root: Path, token: str) -> Path:
    """Open the run's log file in the store and write to it what was held so far."""
    from snapstore.ops.snapshot import open_run_log

    handler, path = open_run_log(store_root, secrets=[token])
    buf: _Buffer = state["buffer"]
    for rec in buf.records:
        if rec.levelno >= handler.level:
            handler.handle(rec)
    logging.getLogger("snapstore").removeHandler(buf)
    buf.records.clear()
    state["file"] = handler
    return path
