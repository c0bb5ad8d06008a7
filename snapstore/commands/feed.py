"""``snapstore feed enable|status|disable``: Airtable webhooks as the change feed of snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from snapstore.commands.base import group
from snapstore.commands.options import make_source as _make_source
from snapstore.commands.options import open_store as _open_existing
from snapstore.commands.options import source_options as _source_options
from snapstore.commands.options import store_option
from snapstore.commands.output import dumps
from snapstore.errors import EXIT_INCOMPLETE, Incomplete, Reported

if TYPE_CHECKING:
    from snapstore.store import Store


def _store(store: str) -> Store:
    """The store (created if new); its errors keep their exit codes (10 no store, 11 locked)."""
    return _open_existing(store, create=True)


def _bases(source, wanted: tuple[str, ...]) -> list[dict]:
    """The visible bases ``--base`` names (ids or names: snapstore.selection's one rule), else all."""
    from snapstore.selection import select

    source.preflight()
    visible = source.bases()
    ids = select(wanted, [(b["id"], b.get("name")) for b in visible], "base", "visible to this token")
    return visible if ids is None else [b for b in visible if b["id"] in ids]


def _names(st: Store) -> dict[str, str | None]:
    """Base id -> its newest name: every base the store's snapshots hold, and every base with a feed."""
    from snapstore.feed.state import load_registry

    names: dict[str, str | None] = {}
    for snap in st.list_snapshots():  # newest first: the newest name wins
        for b in snap.bases:
            names.setdefault(b.base_id, b.name)
    for base_id in load_registry(st).hooks:
        names.setdefault(base_id, None)
    return names


def _stored_bases(st: Store, wanted: tuple[str, ...]) -> list[str] | None:
    """The ids ``--base`` names among the bases the store knows (ids or names), None for all."""
    from snapstore.selection import select

    ids = select(wanted, list(_names(st).items()), "base", "in this store")
    return None if ids is None else sorted(ids)


def _results(res: list[dict], as_json: bool, names: dict[str, str | None] | None = None) -> None:
    """One line per base (or JSON); exit 3 when a base failed."""
    for r in res:
        if not r.get("name") and (names or {}).get(r["base_id"]):
            r["name"] = names[r["base_id"]]
    if as_json:
        click.echo(dumps(res))
    else:
        for r in res:
            name = f"{r['name']} ({r['base_id']})" if r.get("name") else r["base_id"]
            click.echo(f"{'ok  ' if r['ok'] else 'FAIL'} {name}: {r['message']}")
    bad = [r for r in res if not r["ok"]]
    if bad:
        raise Reported(EXIT_INCOMPLETE) if as_json else Incomplete(f"{len(bad)} of {len(res)} base(s) failed")


@group()
def feed() -> None:
    """The change feed: a snapstore webhook per base, so a snapshot reads only what changed."""


@feed.command(imports=("snapstore.feed.manage",))
@_source_options
@store_option
@click.option("--base", "-b", multiple=True, help="Base id or name (repeatable; default: every visible base).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def enable(store, base, as_json, **kw) -> None:
    """Create snapstore's hook on each base (no notification URL; polled by snapshots)."""
    from snapstore.feed import manage

    source, _token = _make_source(kw)
    with source:
        bases = _bases(source, base)
        st = _store(store)
        res = manage.enable(st, source, bases)
    _results(res, as_json)


@feed.command(imports=("snapstore.feed.manage",))
@_source_options
@store_option
@click.option("--base", "-b", multiple=True, help="Base id or name (repeatable; default: every base with a feed).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def disable(store, base, as_json, **kw) -> None:
    """Delete snapstore's hooks (never anyone else's); snapshots list those bases in full again."""
    from snapstore.feed import manage

    source, _token = _make_source(kw)
    st = _open_existing(store)
    wanted = _stored_bases(st, base)
    with source:
        res = manage.disable(st, source, wanted)
    _results(res, as_json, _names(st))


@feed.command(imports=("snapstore.feed.manage",))
@store_option
@click.option("--base", "-b", multiple=True, help="Only this base (id or name; repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable result.")
def status(store, base, as_json) -> None:
    """Per base: the hook, its expiry, the cursor, the last feed snapshot and full listing, the misses."""
    from snapstore.feed import manage

    st = _open_existing(store)
    wanted = _stored_bases(st, base)
    names = _names(st)
    doc = manage.status(st)
    doc["bases"] = [{**b, "name": names.get(b["base_id"])} for b in doc["bases"]
                    if wanted is None or b["base_id"] in wanted]
    if as_json:
        click.echo(dumps(doc))
        return
    if doc["registry_problem"]:
        click.echo(f"warning: {doc['registry_problem']}")
    if not doc["bases"]:
        click.echo("the feed is not enabled on any base (snapstore feed enable --base B)")
        return
    for b in doc["bases"]:
        missed = "not measured yet" if b["missed"] is None else f"{b['missed']} (full listing {b['missed_at']})"
        click.echo(f"{b['name'] + ' (' + b['base_id'] + ')' if b['name'] else b['base_id']}: hook {b['hook_id']}, expires {b['expires'] or '?'}"
                   + (" (EXPIRED)" if b["expired"] else "")
                   + f", cursor {b['cursor'] if b['cursor'] is not None else '-'}")
        click.echo(f"  last snapshot {(b['last_snapshot'] or '-')[:8]} ({b['last_mode'] or '-'}: {b['last_reason'] or '-'})")
        click.echo(f"  last feed snapshot {b['last_feed'] or '-'}, last full listing {b['last_full'] or '-'}; "
                   f"records the feed missed: {missed}")
        click.echo("  next full listing " + ("due now" if b["sweep_due"] else b["next_sweep"] or "not on time")
                   + (f" (every {b['sweep_every_hours']:g} h)" if b["sweep_every_hours"] else ""))

