"""Run chunk functions on all cores, results in order, with a bounded number in flight.

Export spends its time in Python per record (parse, reshape, encode), which one interpreter does on one
core. Chunks of a table are independent, so a pool of forked worker processes encodes them while the
main process only appends the results to files (and gives out attachment names) in chunk order.

Why fork: a worker needs the open store (its backend and compression dictionaries) and the encoder
modules already imported; fork gives it both for free, where spawn would re-import pyarrow and friends
(about half a second per worker, as long as a 50,000-record export). Workers never touch the catalog
(DuckDB) or log: they read packs and return plain data. Stores on S3 run in-process (their client is
not safe to share across fork).

At most ``window`` results are pending at any time, so memory stays flat however large the table,
even when the main process writes slower than the workers encode.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from snapstore import interrupts
from snapstore.store import StoreError


def can_fork() -> bool:
    """Whether worker processes are available here (fork: Linux and macOS; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def bounded_workers(requested: int) -> int:
    """``--workers N`` as the machine can run it: at most one process per core (more only adds
    memory and switching: every worker is busy all the time)."""
    return max(1, min(int(requested), default_workers()))


def _init_worker(initializer: Callable[..., None], initargs: tuple) -> None:
    # The main process decides when to stop: Ctrl-C reaches the whole process group, and a worker
    # would print a traceback per task; the main process ends workers with SIGTERM, which must not
    # run a handler it installed before forking.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    interrupts.unblock_in_child()
    _die_with_parent()
    initializer(*initargs, worker=True)


def _die_with_parent() -> None:
    """A worker must not outlive its export: a main process killed outright cannot stop it, and the
    worker, holding its own copy of the task pipe, would wait for work forever. Linux delivers
    SIGKILL when the parent dies; elsewhere a thread watches the parent's pid."""
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the parent died before the call
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="snapstore-parent-watch", daemon=True).start()


def _ready() -> int:
    return os.getpid()


class WorkerDied(StoreError):
    """A worker process ended without finishing its task (killed, out of memory, crashed); the CLI
    reports it like any other error that stops a command."""


def _worker_died() -> WorkerDied:
    return WorkerDied("an export worker process died before finishing its chunk (killed, or out of memory?); "
                      "nothing was written; run again, or with --workers 1")


#: --workers above this is refused: a number nobody means (100,000 forked 4,500 processes and took
#: 23.6 of 24 GiB before anything else ran out).


class Executor:
    """``map`` over task tuples, in order: in a fork pool when ``workers > 1``, else in-process.

    A ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: when a worker is killed (the
    out-of-memory killer, a signal), its futures fail at once instead of waiting forever."""

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> None:
        """``initializer(*initargs, worker=...)`` prepares a process to run tasks: this one (in-process,
        ``worker=False``) or each pool worker (``worker=True``)."""
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        if not self.parallel:
            initializer(*initargs, worker=False)
            return
        # fork now, before this process starts any thread of its own (a fork pool starts all its
        # workers at the first task, so one no-op task per worker makes sure they exist)
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_init_worker, initargs=(initializer, initargs))
        try:
            with interrupts.deferred():  # a signal inside os.fork's hooks would be lost
                futures = [self._pool.submit(_ready) for _ in range(workers)]
            for f in futures:
                f.result()
        except BrokenProcessPool as e:
            self.terminate()
            raise _worker_died() from e
        except BaseException:  # interrupted while the workers start: no `with` will clean up
            self.terminate()
            raise

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple], window: int | None = None,
            skip: Callable[[tuple], bool] | None = None) -> Iterator[tuple[tuple, Any]]:
        """(task, fn(*task)) for each task, in task order; (task, None) for a task ``skip`` says needs
        no work (it is not sent to a worker, and still comes in its place). Tasks are pulled lazily:
        at most ``window`` (default twice the workers) are submitted and not yet yielded."""
        if self._pool is None:
            for task in tasks:
                yield task, None if skip is not None and skip(task) else fn(*task)
            return
        window = window or 2 * self.workers
        pending: deque = deque()
        it = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    task = next(it)
                except StopIteration:
                    exhausted = True
                    break
                if skip is not None and skip(task):
                    fut: Future = Future()
                    fut.set_result(None)
                else:
                    try:  # a pool whose worker died refuses new work at once
                        fut = self._pool.submit(fn, *task)
                    except BrokenProcessPool as e:
                        raise _worker_died() from e
                pending.append((task, fut))
            if not pending:
                return
            task, fut = pending.popleft()
            try:
                result = fut.result()
            except BrokenProcessPool as e:
                raise _worker_died() from e
            yield task, result

    def prefetch(self, items: Iterable, depth: int = 2) -> Iterator:
        """``items``, produced by a background thread up to ``depth`` ahead: the catalog query that
        locates the next chunks (DuckDB, which releases the GIL) overlaps the workers' encoding."""
        if not self.parallel:
            yield from items
            return
        q: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for item in items:
                    while not stop.is_set():
                        try:
                            q.put((item, None), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put((done, None))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer
                q.put((done, e))

        t = threading.Thread(target=produce, name="snapstore-prefetch", daemon=True)
        t.start()
        try:
            while True:
                item, err = q.get()
                if item is done:
                    if err is not None:
                        raise err
                    return
                yield item
        finally:
            stop.set()
            t.join()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def terminate(self) -> None:
        """Stop now: pending chunks are dropped and the workers killed (the export is failing or was
        interrupted). SIGKILL, not SIGTERM: a worker holds nothing that needs cleaning up (it only
        reads packs and returns bytes), and a worker that must run a handler, or that is stopped
        while the machine is loaded, is what kept stopped exports waiting. The pool's own threads
        are not waited for: with every worker dead they end by themselves, and the CLI leaves an
        interrupted or failed run with os._exit (snapstore/commands/base.py: run)."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        procs = list((getattr(pool, "_processes", None) or {}).values())
        for proc in procs:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if proc.pid is not None:
                    os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 5
        for proc in procs:  # reap them, briefly: a SIGKILLed process ends at once
            with contextlib.suppress(Exception):
                proc.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()
