"""The export's temporary folder (``.snapstore-export-*.partial``): created, owned, published, and
removed when nobody owns it any more.

An export writes everything under a temporary name and renames it into place last, so a folder named
``airtable_backup_*`` is always complete. A SIGKILL (or the interrupt watchdog) cannot clean up, so
the temporary folder stays; the next export in the same place removes it. Ownership is an exclusive
``flock`` on the folder itself, held for the whole export: the kernel drops it when the process ends,
however it ends, so "stale" needs no pid (pids are reused) and no age (exports can run for hours).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
from pathlib import Path

from snapstore import interrupts

log = logging.getLogger("snapstore.export")

PREFIX = ".snapstore-export-"
SUFFIX = ".partial"


class PartialFolder:
    """A temporary export folder this process owns until :meth:`publish` or :meth:`discard`."""

    def __init__(self, out: Path, tag: str) -> None:
        self.path = out / f"{PREFIX}{tag}-{secrets.token_hex(4)}{SUFFIX}"
        self.path.mkdir()
        self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def publish(self, out: Path, name: str) -> Path:
        """Rename the finished folder to ``name`` (``name_2``, ``name_3``... when taken): the export's
        commit point. A stop asked for before it wins (no folder); one that arrives during the
        rename waits for it (the folder is complete, and the export says so)."""
        interrupts.check()
        with interrupts.shielded():
            n = 1
            while True:
                final = out / (name if n == 1 else f"{name}_{n}")
                n += 1
                if final.exists():
                    continue
                try:
                    os.rename(self.path, final)
                    break
                except OSError:
                    if not final.exists() or n > 1000:
                        raise
            self.path = final
            self._release()
            interrupts.finished()  # the export is complete: a signal now must not undo or hide it
        return final

    def discard(self) -> None:
        """Remove the folder and everything in it (the export failed or was stopped).

        Shielded: a stopped export is already unwinding, and the interrupt watchdog raises its
        KeyboardInterrupt a second time when the first one seems lost (unwinding a worker pool
        under load can take that long), which cut this removal half-way and left the folder
        (12 of 62 SIGTERMs late in a large export). Only the watchdog's final exit can still cut
        it; the next export in the same place then removes what is left (:func:`remove_stale`)."""
        with interrupts.shielded():
            shutil.rmtree(self.path, ignore_errors=True)
            self._release()


def remove_stale(out: Path) -> list[Path]:
    """Remove temporary export folders in ``out`` that no live process owns (a killed export's);
    those of exports still running are left alone."""
    removed = []
    try:
        candidates = [p for p in out.iterdir() if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)]
    except OSError:
        return removed
    for p in candidates:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running export owns it
            shutil.rmtree(p, ignore_errors=True)
            if not p.exists():
                removed.append(p)
                log.info("removed %s, left by an export that was killed", p.name)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
    return removed
