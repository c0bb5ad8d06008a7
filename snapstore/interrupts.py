"""Ctrl-C and SIGTERM for a whole process: one stop request, honoured at safe points, and a bound on how
long stopping may take.

Why not Python's default (SIGINT raises KeyboardInterrupt wherever the main thread is): a second
signal, or the first one landing inside a commit, a rename or a worker pool's shutdown, left exports
that hung for minutes, aborted in C++ teardown, or left a finished folder behind after exit 130
(1 run in 5 under load). So:

- the first signal raises KeyboardInterrupt in the main thread once, unless the main thread is inside
  :func:`shielded` (a commit point), where it waits for the end of the section;
- it also sets every registered cancel event, so worker threads unwind;
- later signals are ignored (the first one is already being honoured);
- a watchdog ends the process with exit 130 if cleanup has not finished within :data:`GRACE`
  seconds, so nothing a signal interrupts can hang a cron job. Whatever it leaves (an export's
  ``.partial`` folder, unreferenced packs) is what a SIGKILL leaves, which every verb already survives.
"""

from __future__ import annotations

import _thread
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from snapstore.errors import EXIT_INTERRUPTED

#: Seconds from the first signal to a forced exit when $SNAPSTORE_INTERRUPT_GRACE does not say
#: (or says nonsense: :func:`check_settings` refuses it before a command starts). Cleanup (killing
#: workers, removing a partial folder) takes well under a second unloaded; 20 s leaves room for a
#: machine with both cores busy.
DEFAULT_GRACE = 20.0


def _grace(raw: str | None) -> float | None:
    """The grace in seconds ``raw`` gives, or None when it is not a positive finite number."""
    try:
        v = float(raw if raw is not None else DEFAULT_GRACE)
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


GRACE = _grace(os.environ.get("SNAPSTORE_INTERRUPT_GRACE")) or DEFAULT_GRACE


def check_settings() -> None:
    """A command's first step: the environment this module reads is sound (a usage error, exit 2)."""
    raw = os.environ.get("SNAPSTORE_INTERRUPT_GRACE")
    if raw is not None and _grace(raw) is None:
        from snapstore.errors import UsageError

        raise UsageError(f"SNAPSTORE_INTERRUPT_GRACE={raw!r} is not a number of seconds above 0 (default "
                         f"{DEFAULT_GRACE:g})")

_lock = threading.Lock()
_requested: int | None = None  # the first signal's number
_shield = 0
_cancels: list[threading.Event] = []
_installed = False
_redeliver = False


def requested() -> bool:
    """Whether a stop was asked for (worker threads poll this, or a registered event)."""
    return _requested is not None


def _on_signal(signum: int, _frame) -> None:
    global _requested
    global _redeliver
    with _lock:
        first = _requested is None
        if first:
            _requested = signum
        for ev in _cancels:
            ev.set()
    if not first:
        if _redeliver and not _shield:  # the watchdog's second delivery of a lost first one
            _redeliver = False
            raise KeyboardInterrupt
        return
    threading.Thread(target=_watchdog, name="snapstore-interrupt-watchdog", daemon=True).start()
    if _shield:
        return
    raise KeyboardInterrupt


def _watchdog() -> None:
    # Python drops an exception raised where it cannot propagate (an at-fork hook, a __del__): a
    # KeyboardInterrupt raised there is lost ("Exception ignored in: _releaseLock", seen once in 60
    # stopped exports). If the command has not started to unwind after a few seconds, raise it again.
    time.sleep(min(5.0, GRACE / 4))
    if not _shield and threading.main_thread().is_alive():
        global _redeliver
        _redeliver = True
        _thread.interrupt_main()
    time.sleep(GRACE - min(5.0, GRACE / 4))
    try:
        sys.stderr.write(f"interrupted: cleanup took longer than {GRACE:.0f} s; stopping now\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_INTERRUPTED)


def install() -> None:
    """Route SIGINT and SIGTERM through :func:`_on_signal` (main thread only; a no-op elsewhere)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    _installed = True


def reset() -> None:
    """Forget a previous stop request (a library caller, or tests, running several commands in one
    process)."""
    global _requested, _shield
    with _lock:
        _requested = None
        _shield = 0


@contextmanager
def cancel_on_stop(event: threading.Event) -> Iterator[threading.Event]:
    """Set ``event`` when a stop is requested (now, if one already was)."""
    with _lock:
        _cancels.append(event)
        if _requested is not None:
            event.set()
    try:
        yield event
    finally:
        with _lock:
            if event in _cancels:
                _cancels.remove(event)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM at the OS level for a short section that must not see a Python
    exception at all: forking worker processes, whose at-fork hooks (logging's lock) drop an
    exception raised inside them. A signal that arrives meanwhile is delivered at the end."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def unblock_in_child() -> None:
    """A process forked inside :func:`deferred` inherits the blocked signals: let it have them."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@contextmanager
def shielded() -> Iterator[None]:
    """A commit point: a signal arriving inside does not interrupt it, so the section runs whole or
    not at all. Call :func:`check` right before it (a stop asked earlier must not commit). A signal
    that arrived inside is honoured by the next :func:`check`; a command that has nothing left but
    to report its result finishes, and exits 0: what it committed is complete."""
    global _shield
    _shield += 1
    try:
        yield
    finally:
        _shield -= 1


def finished() -> None:
    """The command's result is committed (an export renamed into place) or reported: a signal from
    now on changes nothing. It must not raise in what is left, reporting and the interpreter's exit
    (a KeyboardInterrupt in an atexit hook killed a finished export with SIGINT's status), nor turn
    a complete result into exit 130. :func:`reset` (the start of the next command) undoes it."""
    global _shield
    _shield += 1


def check() -> None:
    """Raise KeyboardInterrupt if a stop was requested: call it right before a commit point."""
    if _requested is not None:
        raise KeyboardInterrupt
