"""`snapstore key list|add|remove|passwd`: the key files of an encrypted store (restic's `key`)."""

from __future__ import annotations

import os

import click

from snapstore.commands import password as pw
from snapstore.commands.base import group
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output

new_password_file = click.option(
    "--new-password-file", metavar="FILE",
    help="Read the new password from FILE's first line (else $SNAPSTORE_NEW_PASSWORD, else asked twice on a terminal).")


def _new_password(path: str | None) -> str:
    from snapstore.store.keys import PasswordNeeded

    if path:
        return pw.read_password_file(path)
    env = os.environ.get("SNAPSTORE_NEW_PASSWORD")
    if env:
        return env
    if os.isatty(0):
        return pw.prompt("new password", confirm=True)
    raise PasswordNeeded("the new password: set SNAPSTORE_NEW_PASSWORD, give --new-password-file FILE, "
                              "or run on a terminal to be asked")


@group()
def key() -> None:
    """Manage an encrypted store's keys: each key file wraps the store's master key with a password."""


@key.command("list")
@store_option
def list_(store: str, out: Output) -> None:
    """The key files: id, created, user and host; * marks the key that opened the store."""
    from snapstore.store import keys

    s = open_store(store)
    rows = [{"id": k.name, "short_id": k.id, "created": k.doc.get("created"), "username": k.doc.get("username"),
             "hostname": k.doc.get("hostname"), "kdf": f"{k.doc.get('kdf')} N={k.doc.get('N')} r={k.doc.get('r')} "
             f"p={k.doc.get('p')}", "current": s.key_file is not None and k.name == s.key_file.name}
            for k in keys.store_keys(s)]
    if out.json:
        out.emit(rows)
        return
    out.echo(f"  {'id':<8}  {'created':<25}  user@host")
    for r in rows:
        out.echo(f"{'*' if r['current'] else ' '} {r['short_id']:<8}  {r['created'] or '?':<25}  {r['username']}@{r['hostname']}")


def _store_and_new_password(store: str, path: str | None):
    """The opened (encrypted) store, then the new password: a wrong current one asks nothing
    (nor does a plain store)."""
    from snapstore.store import keys

    s = open_store(store)
    keys.require_encrypted(s)
    return s, _new_password(path)


@key.command("add")
@store_option
@new_password_file
def add(store: str, new_password_file: str | None, out: Output) -> None:
    """Add a key for another password (the store opens with any of its keys)."""
    from snapstore.store import keys

    kf = keys.add_key(*_store_and_new_password(store, new_password_file))
    _done(out, f"added key {kf.id}", added=kf.id)


@key.command("remove")
@store_option
@click.argument("key_id")
@click.option("--force", is_flag=True, help="Also remove the key in use (the one this password opens).")
def remove(store: str, key_id: str, force: bool, out: Output) -> None:
    """Remove key KEY_ID (an id from `snapstore key list`); never the last one."""
    from snapstore.store import keys

    s = open_store(store)
    kf = keys.remove_key(s, key_id, force=force)
    _done(out, f"removed key {kf.id}", removed=kf.id)


@key.command("passwd")
@store_option
@new_password_file
def passwd(store: str, new_password_file: str | None, out: Output) -> None:
    """Change the password: add a key for the new password, then remove the key in use."""
    from snapstore.store import keys

    new, old = keys.change_password(*_store_and_new_password(store, new_password_file))
    _done(out, f"added key {new.id} for the new password and removed key {old.id}", added=new.id, removed=old.id)


def _done(out: Output, line: str, **ids: str) -> None:
    if out.json:
        out.emit(ids)
    else:
        out.echo(line)
