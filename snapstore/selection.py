"""One rule for picking bases and tables (and fields) by what a user types: ``--base``, ``--table``.

An id selects itself. Otherwise a name: an exact match first, then a case-insensitive one when
it is unique. Two things with the same name are an error that lists them with their ids, so the
user can retype with the id; nothing is picked by guess. Every command that takes ``--base`` or
``--table`` (snapshot, check, diff, export, restore, log, find) goes through here, so ``--base
sales`` means the same thing everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from snapstore import isotime
from snapstore.errors import StoreError, UsageError

#: How many candidates an error lists before "…".
SHOWN = 12


class SelectionError(UsageError):
    """``--base`` / ``--table`` named nothing, or more than one thing (exit code 2)."""


class NoSuchName(SelectionError):
    """Nothing has that id or name. ``wanted`` is what was asked for, ``listing`` what exists."""

    wanted: str = ""
    listing: str = ""


class Ambiguous(SelectionError):
    """Several things have that name."""


def _candidates(items: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """id -> its names (an id seen with two names, e.g. a base renamed between two snapshots,
    answers to both)."""
    out: dict[str, list[str]] = {}
    for item_id, name in items:
        names = out.setdefault(item_id, [])
        if name and name not in names:
            names.append(name)
    return out


def _listing(ids: Iterable[str], cands: dict[str, list[str]], labels: dict[str, str] | None) -> str:
    def one(i: str) -> str:
        label = (labels or {}).get(i) or " / ".join(cands[i])
        return f"{label} ({i})" if label else i

    shown = [one(i) for i in sorted(ids, key=lambda i: (cands[i], i))]
    more = len(shown) - SHOWN
    return ", ".join(shown[:SHOWN]) + (f", … ({more} more)" if more > 0 else "")


def find_id(wanted: str, items: Iterable[tuple[str, str | None]], what: str = "base", where: str = "",
            labels: dict[str, str] | None = None) -> str | None:
    """The id of the one item (``(id, name)`` pairs) that ``wanted`` selects: its id, else its exact
    name, else its name compared case-insensitively; None when nothing matches. Raises Ambiguous
    when several do, listing them (``labels``: how to show an id, default its names)."""
    cands = _candidates(items)
    key = wanted.strip()
    hits = _matches(key, cands)
    if len(hits) > 1:
        where = f" {where}" if where else ""
        raise Ambiguous(f"{what} {key!r} is ambiguous{where}: {_listing(hits, cands, labels)}; give the id")
    return next(iter(hits), None)


def _matches(key: str, cands: dict[str, list[str]]) -> set[str]:
    """The one rule: the id ``key``; else the ids whose name is ``key``; else those whose name is
    ``key`` compared case-insensitively."""
    if key in cands:
        return {key}
    for same in (lambda n: n == key, lambda n: n.casefold() == key.casefold()):
        hits = {i for i, names in cands.items() if any(same(n) for n in names)}
        if hits:
            return hits
    return set()


def field_ids(wanted: str, items: Iterable[tuple[str, str | None]]) -> set[str]:
    """The fields ``wanted`` names among ``(field id, name)`` pairs of one table (names as of any
    snapshot): its id; else every field with that exact name (a field deleted and created again
    under its old name is both); else those whose name matches case-insensitively. Empty when none
    does: ``find --field`` then matches nothing, ``history --field`` says so."""
    return _matches(wanted.strip(), _candidates(items))


def pick(wanted: str, items: Iterable[tuple[str, str | None]], what: str = "base", where: str = "",
         labels: dict[str, str] | None = None, hint: str = "") -> str:
    """Like :func:`find_id`, but nothing matching is an error too: NoSuchName (a usage error, exit 2)
    in one shape whatever the verb, ``no base 'X' in this store (bases: Name (id), …)``, then
    ``hint``."""
    items = list(items)
    found = find_id(wanted, items, what, where, labels)
    if found is not None:
        return found
    cands = _candidates(items)
    where = f" {where}" if where else ""
    listing = _listing(cands, cands, labels)
    tail = f"; {hint}" if hint else ""
    err = NoSuchName((f"no {what} {wanted.strip()!r}{where} ({what}s: {listing})" if cands
                    else f"no {what} {wanted.strip()!r}{where}: there are none") + tail)
    err.wanted, err.listing = wanted.strip(), listing
    raise err


def select(wanted: Sequence[str] | None, items: Iterable[tuple[str, str | None]], what: str = "base",
           where: str = "") -> set[str] | None:
    """The ids ``wanted`` selects (each entry by :func:`pick`), or None when nothing was asked for
    (everything is selected)."""
    if not wanted:
        return None
    items = list(items)
    return {pick(w, items, what, where) for w in wanted}


def table_pairs(spec: str, tables: Sequence[tuple[str, str | None, str, str | None]],
                where: str = "") -> set[tuple[str, str]]:
    """``(base_id, table_id)`` of the table ``spec`` selects among ``(base_id, base name, table_id,
    table name)``: a table id or name (:func:`pick`'s rule), or ``base/table`` with the base and the
    table each an id or a name (table names may hold "/": every split is tried)."""
    labels = {t: f"{bn or b} / {tn or t}" for b, bn, t, tn in tables}
    base_of = {t: b for b, _bn, t, _tn in tables}
    found = find_id(spec, [(t, tn) for _b, _bn, t, tn in tables], "table", where, labels)
    if found is None:
        for i, ch in enumerate(spec):
            if ch != "/":
                continue
            bid = find_id(spec[:i], [(b, bn) for b, bn, _t, _tn in tables], "base", where)
            if bid is not None:
                found = find_id(spec[i + 1:], [(t, tn) for b, _bn, t, tn in tables if b == bid], "table",
                                where, labels)
                if found is not None:
                    break
    if found is None:
        pick(spec, [(t, tn) for _b, _bn, t, tn in tables], "table", where, labels)  # raises NoSuchName
    return {(base_of[found], found)}


def select_tables(wanted: Sequence[str] | None, tables: Iterable[tuple[str, str | None, str, str | None]],
                  where: str = "") -> set[tuple[str, str]] | None:
    """``(base_id, table_id)`` of the tables ``wanted`` selects (each entry by :func:`table_pairs`),
    or None when nothing was asked for. Table ids are unique across bases; a name repeated across
    bases is ambiguous unless ``--base`` narrowed the tables first or the entry says ``base/table``."""
    if not wanted:
        return None
    tables = list(tables)
    return {pair for w in wanted for pair in table_pairs(w, tables, where)}


# ---- snapshots grouped by their set of bases ---------------------------------------------------
#
# As restic groups snapshots by their paths, snapstore groups them by the set of bases they hold:
# after `snapshot --base Operations`, that snapshot is the newest of its own group, not the
# "latest" against which a full snapshot is compared.


def base_set(snap) -> frozenset[str]:
    """The group of a snapshot: the ids of the bases it holds."""
    return frozenset(b.base_id for b in snap.bases)


def holding(snaps: Sequence, bases: Sequence[str] | None) -> list:
    """The snapshots (newest first, as given) that hold every base ``bases`` names (ids or names,
    as of any snapshot); all of them when ``bases`` is empty."""
    if not bases:
        return list(snaps)
    ids = select(bases, [(b.base_id, b.name) for s in snaps for b in s.bases], "base", "in this store")
    return [s for s in snaps if ids <= base_set(s)]


#: The snapshot-name grammar every verb reads (``log`` shows the names): ``latest``, ``latest~N``,
#: an id or a prefix of one (4 hex digits or more), a date (its last snapshot) or an ISO time.
_LATEST = re.compile(r"latest(?:~(\d+))?")
_ID = re.compile(r"[0-9a-f]{4,64}")


def snapshot_named(snaps: Sequence, name: str, group: Sequence | None = None, shown: str = ""):
    """The snapshot ``name`` names among ``snaps`` (newest first): the one parser of snapshot names,
    behind :meth:`Store.resolve` and :func:`resolve_snapshot`. ``latest~N`` and dates count among
    ``group`` (default: every snapshot; ``shown`` names the group in messages); an id names its
    snapshot whatever the group. Unknown or ambiguous: StoreError (exit 1)."""
    if not snaps:
        raise StoreError("the store has no snapshots yet")
    name = name.strip()
    among = list(snaps if group is None else group)
    held = f" holding {shown}" if shown else ""
    m = _LATEST.fullmatch(name)
    if m:
        n = int(m.group(1) or 0)
        if n >= len(among):
            raise StoreError(f"{name}: the store has only {len(among)} snapshot(s){held}")
        return among[n]
    if _ID.fullmatch(name):
        hits = [s for s in snaps if s.full_id.startswith(name)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise StoreError(f"snapshot id {name} is ambiguous ({len(hits)} match); give more characters")
    when = isotime.until(name)
    if when is not None:
        for s in among:
            if s.time <= when:
                return s
        raise StoreError(f"no snapshot{held} at or before {name}")
    raise StoreError(f"no snapshot named {name!r} (try `snapstore log`)")


def resolve_snapshot(store, name, bases: Sequence[str] | None = None):
    """A snapshot by name (:func:`snapshot_named`), with ``latest``, ``latest~N`` and dates counted
    among the snapshots holding ``bases`` only. An id names its snapshot whatever ``bases`` says."""
    if not bases or not isinstance(name, str):
        return store.resolve(name)
    snaps = store.list_snapshots()
    return snapshot_named(snaps, name, holding(snaps, bases), ", ".join(bases))


def default_pair(store, bases: Sequence[str] | None = None, a=None):
    """What ``diff`` compares when not told: the latest snapshot (holding ``bases``) against the one
    before it with the same set of bases, or, with ``a`` given, ``a`` against the latest snapshot of
    its group (the latest holding ``bases`` when none is newer). Falls back to the snapshot before that shares a base with it (bases only one side
    holds are then reported "not captured"). Returns (older, newer)."""
    snaps = holding(store.list_snapshots(), bases)
    if a is not None:
        sa = resolve_snapshot(store, a, bases)
        same = [s for s in snaps if base_set(s) == base_set(sa) and s.seq > sa.seq]
        return sa, (same[0] if same else snaps[0] if snaps else sa)
    if len(snaps) < 2:
        which = f" holding {', '.join(bases)}" if bases else ""
        raise StoreError(f"diff needs two snapshots{which}; the store has {len(snaps)}")
    newest, older = snaps[0], snaps[1:]
    group = base_set(newest)
    older = ([s for s in older if base_set(s) == group] or [s for s in older if base_set(s) & group] or older)
    return older[0], newest


__all__ = ["Ambiguous", "NoSuchName", "SelectionError", "base_set", "default_pair", "field_ids", "find_id", "holding", "pick",
           "resolve_snapshot", "select", "select_tables", "snapshot_named", "table_pairs"]
