"""The one configuration file every command reads (``--config FILE`` or ``$SNAPSTORE_CONFIG``).

TOML. Top-level keys are shared: each command takes those it has an option for. A table per
command holds keys for that command alone (``[snapshot]``, ``[export]``; a group's subcommand as
``[feed.enable]``). Keys are the long option names, ``-`` or ``_`` alike::

    store = "/backups/airtable"
    token_file = "~/.config/snapstore/token"   # the token itself never goes in this file
    api_url = "https://api.airtable.com"

    [snapshot]
    comments = true
    quiet = true

    [export]
    out = "/backups/exports"
    format = "json,sqlite"

A key no command knows, or one its table's command does not take, is an error that names the key,
the file and the keys that exist: a misspelt ``stor`` must not silently back up somewhere else.
Precedence: flags, then the environment, then this file, then the built-in defaults.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from snapstore.errors import UsageError

#: Keys refused whatever the command: secrets never live in a file that gets copied and backed up.
SECRET_KEYS = {
    "token": "the token must not be stored in the config file; use token_file, $AIRTABLE_TOKEN or "
             "$AIRTABLE_TOKEN_FILE",
    "password": "the password must not be stored in the config file; use a password file or "
                "$SNAPSTORE_PASSWORD",
}

#: Values that are paths: ``~`` is expanded.
PATH_KEYS = {"store", "token_file", "out", "password_file"}

#: Keys the ``snapstore`` group itself takes (its options before the verb), at the top level only:
#: ``password_file`` is ``--password-file``, so a nightly run of an encrypted store needs no
#: environment (snapstore/commands/config.py hands it to snapstore/commands/password.py).
GROUP_KEYS = {"password_file"}

#: A command's path (``("snapshot",)``, ``("feed", "enable")``) → the keys it takes.
Known = dict[tuple[str, ...], set[str]]


class ConfigError(UsageError):
    """The configuration file cannot be read, or holds a key nothing takes (exit 2)."""


def key(name: str) -> str:
    """``api-url`` and ``api_url`` are the same key."""
    return name.replace("-", "_")


def read(path: str | Path) -> dict[str, Any]:
    """The parsed file; a missing or malformed file is a ConfigError naming it."""
    if "\0" in str(path):
        raise ConfigError("the config file's path holds a NUL byte, which no path can hold")
    p = Path(path).expanduser()
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file {p}: {getattr(e, 'strerror', None) or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the config file {p} is not valid TOML: {e}") from None


def settings_for(doc: dict[str, Any], path: str | Path, command: tuple[str, ...], known: Known) -> dict[str, Any]:
    """The settings ``command`` takes from the file: its share of the top-level keys, then its own
    table's (which win). The whole file is checked first, whichever command runs, so a typo shows
    up on the first command that reads the file."""
    check(doc, path, known)
    mine = known.get(command, set())
    out = {key(k): v for k, v in doc.items() if not isinstance(v, dict) and key(k) in mine}
    table: Any = doc
    for part in command:
        table = table.get(part) if isinstance(table, dict) else None
    if isinstance(table, dict):
        out.update({key(k): v for k, v in table.items() if not isinstance(v, dict)})
    for k, v in out.items():
        if k in PATH_KEYS and isinstance(v, str):
            out[k] = checked_path(v, k, path)
    return out


def checked_path(value: str, name: str, path: str | Path) -> str:
    """A path setting, ``~`` expanded; a NUL byte (no file system takes one) is the file's error."""
    if "\0" in value:
        raise ConfigError(f"{path}: {name} holds a NUL byte, which no path can hold")
    return str(Path(value).expanduser())


def check(doc: dict[str, Any], path: str | Path, known: Known) -> None:
    """Every key of the file is taken by some command (top level) or by its table's command (a
    group's table: by one of its subcommands). A stranger is one line naming the nearest keys."""
    tables = {c[:n] for c in known for n in range(1, len(c) + 1)}

    def walk(table: dict, where: tuple[str, ...]) -> None:
        allowed = _keys_under(where, known) | (GROUP_KEYS if not where else set())
        for k, v in table.items():
            if key(k) in SECRET_KEYS:
                raise ConfigError(f"{path}: {SECRET_KEYS[key(k)]}")
            if isinstance(v, dict):
                sub = (*where, k)
                if sub not in tables:
                    names = sorted(".".join(c) for c in tables if len(c) == len(sub) and c[:-1] == where)
                    raise ConfigError(f"unknown table [{'.'.join(sub)}] in {path}{_nearest('.'.join(sub), names)}; "
                                      "a table is named after a command")
                walk(v, sub)
            elif key(k) not in allowed:
                place = "at the top level" if not where else f"in [{'.'.join(where)}]"
                raise ConfigError(f"unknown key {k!r} {place} of {path}{_nearest(key(k), allowed)}; keys are "
                                  "the commands' long option names (snapstore COMMAND --help)")

    walk(doc, ())


#: A command's keys are listed in full up to this many; beyond, only the nearest are named.
LISTED = 20


def _nearest(wanted: str, names) -> str:
    """`` (did you mean 'store'?)``, the nearest names (up to 3); else all of them when they are
    few, so the line stays one a person reads."""
    names = sorted(names)
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    if close:
        return f" (did you mean {' or '.join(repr(c) for c in close)}?)"
    return f" (keys: {', '.join(names)})" if len(names) <= LISTED else ""


def _keys_under(prefix: tuple[str, ...], known: Known) -> set[str]:
    """The keys of every command under ``prefix`` (all of them for the top level)."""
    extra = GROUP_KEYS if not prefix else set()
    return extra.union(*(ks for c, ks in known.items() if c[:len(prefix)] == prefix))
