"""The one error root: every error snapstore means to show a user is a :class:`SnapstoreError`, and it
carries the exit code a script sees. The CLI turns any of them into one line (``snapstore.cli``); the
library never exits.

Exit codes are restic's, so that a wrapper written for restic reads snapstore the same way:

====  =====================================================================================
0     success
1     an error: nothing was written (bad token, unreachable API, unknown snapshot, full disk)
2     usage: an option or argument the command does not accept
3     incomplete: something was written, but not everything (a partial snapshot, an export
      missing attachments): the run's summary says what
10    no store at that location
11    the store is locked by another process
12    wrong password (encrypted stores)
130   interrupted (Ctrl-C, SIGTERM): nothing half-committed
====  =====================================================================================
"""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_NO_STORE = 10
EXIT_LOCKED = 11
EXIT_WRONG_PASSWORD = 12
EXIT_INTERRUPTED = 130


class SnapstoreError(Exception):
    """An error the user can act on. ``str(exc)`` is one line for the user (never the token or the
    password); ``exit_code`` is what the process exits with."""

    exit_code: int = EXIT_ERROR

    def __init__(self, message: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class StoreError(SnapstoreError):
    """A store operation failed in a way the user can act on (a damaged object, a bad config)."""


class UsageError(SnapstoreError):
    """An option or argument the command cannot take (found by the library, not by click)."""

    exit_code = EXIT_USAGE


class NoStore(StoreError):
    """There is no store at the given location."""

    exit_code = EXIT_NO_STORE


class Locked(StoreError):
    """Another process holds the store."""

    exit_code = EXIT_LOCKED


class WrongPassword(SnapstoreError):
    """No key of an encrypted store opens with the password given."""

    exit_code = EXIT_WRONG_PASSWORD


class Incomplete(SnapstoreError):
    """The command wrote its result, but not all of it: the message says what is missing."""

    exit_code = EXIT_INCOMPLETE


class Interrupted(SnapstoreError):
    """Ctrl-C or SIGTERM stopped the command; what it committed before is intact."""

    exit_code = EXIT_INTERRUPTED


class Reported(SnapstoreError):
    """The command already printed its result, failure included (a ``--json`` document, a
    snapshot's PARTIAL summary): only the exit code is left to give, and no line is added."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("", exit_code=exit_code)


_OS_ADVICE = {
    errno.ENOSPC: ("no space left on device", "free some space and run again"),
    errno.EDQUOT: ("disk quota exceeded", "free some space and run again"),
    errno.EROFS: ("read-only file system", "use a writable location"),
    errno.EACCES: ("permission denied", "check the permissions, or use another location"),
    errno.EPERM: ("operation not permitted", "check the permissions, or use another location"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EISDIR: ("is a folder, not a file", "choose a file"),
    errno.EEXIST: ("already exists", "choose another path"),
    errno.EMFILE: ("too many open files", "raise the open-files limit (ulimit -n)"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
}


def os_error_message(exc: OSError, what: str = "") -> str:
    """One plain sentence for an OS error: what failed, on which path, and what to do.
    ``what`` says what was being done ("writing the export").

    >>> os_error_message(OSError(errno.ENOSPC, "No space left", "/data/x"), "writing the store")
    'writing the store failed: no space left on device (/data/x); free some space and run again'
    """
    said, advice = _OS_ADVICE.get(exc.errno or -1, (exc.strerror or str(exc), ""))
    path = exc.filename
    where = f" ({os.fsdecode(path)})" if path else ""
    head = f"{what} failed: " if what else ""
    tail = f"; {advice}" if advice else ""
    return f"{head}{said}{where}{tail}"


def find_os_error(exc: BaseException) -> OSError | None:
    """The OS error at the bottom of an exception chain, if any (a store error raised from an
    ENOSPC names the disk, not the store's wrapper)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def os_error(exc: OSError, what: str = "") -> SnapstoreError:
    """An OS error as a :class:`SnapstoreError` (exit 1) with :func:`os_error_message`'s line."""
    err = SnapstoreError(os_error_message(exc, what))
    err.__cause__ = exc
    return err
