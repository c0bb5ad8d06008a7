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

import multiprocessing
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def default_workers() -> int:
    """One worker per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(initializer: Callable[..., None], initargs: tuple) -> None:
    initializer(*initargs, worker=True)


class Executor:
    """``map`` over task tuples, in order: in a fork pool when ``workers > 1``, else in-process."""

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple = ()) -> None:
        """``initializer(*initargs, worker=...)`` prepares a process to run tasks: this one (in-process,
        ``worker=False``) or each pool worker (``worker=True``)."""
        self.workers = workers
        self._init = (initializer, initargs)
        self._pool = None
        if not self.parallel:
            initializer(*initargs, worker=False)
        if self.parallel:  # fork now, before this process starts any thread of its own
            self._get_pool()

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def _get_pool(self):
        if self._pool is None:
            ctx = multiprocessing.get_context("fork")
            self._pool = ctx.Pool(self.workers, initializer=_init_worker, initargs=self._init)
        return self._pool

    def map(self, fn: Callable[..., Any], tasks: Iterable[tuple], window: int | None = None
            ) -> Iterator[tuple[tuple, Any]]:
        """(task, fn(*task)) for each task, in task order. Tasks are pulled lazily: at most ``window``
        (default twice the workers) are submitted and not yet yielded."""
        if not self.parallel:
            for task in tasks:
                yield task, fn(*task)
            return
        pool = self._get_pool()
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
                pending.append((task, pool.apply_async(fn, task)))
            if not pending:
                return
            task, res = pending.popleft()
            yield task, res.get()

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
            self._pool.close()
            self._pool.join()
            self._pool = None

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type, *rest) -> None:
        if exc_type is None:
            self.close()
        else:
            self.terminate()
