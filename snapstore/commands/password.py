"""Where the CLI gets a store's password: ``SNAPSTORE_PASSWORD``, else ``--password-file`` (a
global option) or ``SNAPSTORE_PASSWORD_FILE``, else a prompt on a terminal (twice for a new
store). Without any of them, a command that needs one stops with one line saying how (exit 2).

The library never prompts: :func:`activate` makes :func:`resolve` the library's password source
(``snapstore.store.keys.password_source``) when a verb is about to run, and :func:`installed` puts
the previous one back at the end of the CLI invocation. Nothing here imports the store at import
time (it pulls in DuckDB and Arrow): ``snapstore --help`` does not need it. A password read from a
file or a prompt is kept in memory only, and :func:`secrets` lets crash reports redact it.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_KEYS = "snapstore.store.keys"

#: the global --password-file of this invocation (snapstore/cli.py sets it)
PASSWORD_FILE: str | None = None
_FLAG_GIVEN = False  # PASSWORD_FILE came from the command line, not from SNAPSTORE_PASSWORD_FILE
_known: list[str] = []  # passwords read from files or prompts (for redaction), this process only
_prompted: dict[tuple[str, bool], str] = {}

HOW = ("set SNAPSTORE_PASSWORD, or give --password-file FILE (or SNAPSTORE_PASSWORD_FILE), "
       "or run on a terminal to be asked")


def _needed(message: str) -> Exception:
    """The library's PasswordNeeded (exit 2), imported when a password is actually needed."""
    from snapstore.store.keys import PasswordNeeded

    return PasswordNeeded(message)


def secrets() -> list[str]:
    """Passwords this process read from a file or a prompt: crash reports redact them."""
    return list(_known)


def _remember(pw: str) -> str:
    if pw not in _known:
        _known.append(pw)
    return pw


def read_password_file(path: str) -> str:
    """The file's first line (a trailing newline is not part of the password)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise _needed(f"cannot read the password file {path}: {e.strerror or e}") from e
    pw = text.splitlines()[0] if text else ""
    if not pw:
        raise _needed(f"the password file {path} is empty")
    return _remember(pw)


def prompt(label: str, *, confirm: bool) -> str:
    pw = getpass.getpass(f"{label}: ")
    if not pw:
        raise _needed("an empty password is not allowed")
    if confirm and getpass.getpass(f"{label} (again): ") != pw:
        raise _needed("the two passwords differ; nothing was changed")
    return _remember(pw)


def resolve(location: str, new: bool = False) -> str:
    """The password for the store at ``location`` (``new``: one for a store being created): the
    --password-file flag first (flags beat the environment, as everywhere in the CLI), then
    ``SNAPSTORE_PASSWORD``, then ``SNAPSTORE_PASSWORD_FILE``, then a prompt."""
    if PASSWORD_FILE and _FLAG_GIVEN:
        return read_password_file(PASSWORD_FILE)
    pw = os.environ.get("SNAPSTORE_PASSWORD")
    if pw:
        return pw
    path = PASSWORD_FILE or os.environ.get("SNAPSTORE_PASSWORD_FILE")
    if path:
        return read_password_file(path)
    if sys.stdin.isatty():
        if (location, new) not in _prompted:
            label = f"new password for {location}" if new else f"password for {location}"
            _prompted[(location, new)] = prompt(label, confirm=new)
        return _prompted[(location, new)]
    if new:
        raise _needed(f"a new store is encrypted and needs a password: {HOW}; or make a plain "
                      "store with `snapstore init --no-encryption`")
    raise _needed(f"the store at {location} is encrypted: {HOW}")


def use(password_file: str | None, *, from_flag: bool = False) -> None:
    """The group's --password-file (``from_flag``: given on the command line)."""
    global PASSWORD_FILE, _FLAG_GIVEN
    PASSWORD_FILE, _FLAG_GIVEN = password_file, from_flag


def activate() -> None:
    """:func:`resolve` as the library's password source: a verb is about to run (its store imports
    are done, snapstore/commands/base.py), also when the group runs without :func:`installed`
    around it, as ``snapstore demo`` runs its verbs."""
    from snapstore.store import keys

    keys.password_source = resolve


@contextmanager
def installed() -> Iterator[None]:
    """One CLI invocation: the library's password source as it was before is put back at its end
    (:func:`activate` replaced it if a verb ran)."""
    global PASSWORD_FILE, _FLAG_GIVEN
    loaded = sys.modules.get(_KEYS)
    prev = loaded.password_source if loaded is not None else None  # (the module's own default: None)
    try:
        yield
    finally:
        if _KEYS in sys.modules:
            sys.modules[_KEYS].password_source = prev
        PASSWORD_FILE, _FLAG_GIVEN = None, False
        _prompted.clear()
