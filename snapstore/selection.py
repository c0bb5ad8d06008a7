"""One rule for picking bases and tables (and fields) by what a user types: ``--base``, ``--table``.

An id selects itself. Otherwise a name: an exact match first, then a case-insensitive one when
it is unique. Two things with the same name are an error that lists them with their ids, so the
user can retype with the id; nothing is picked by guess. Every command that takes ``--base`` or
``--table`` (snapshot, check, diff, export, restore, log, find) goes through here, so ``--base
sales`` means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from snapstore.errors import UsageError

#: How many candidates an error lists before "…".
SHOWN = 12


class SelectionError(UsageError):
    """``--base`` / ``--table`` named nothing, or more than one thing (exit code 2)."""


def _candidates(items: Iterable[tuple[str, str | None]]) -> dict[str, list[str]]:
    """id -> its names (an id seen with two names, e.g. a base renamed between two snapshots,
    answers to both)."""
    out: dict[str, list[str]] = {}
    for item_id, name in items:
        names = out.setdefault(item_id, [])
        if name and name not in names:
            names.append(name)
    return out


def _listing(ids: Iterable[str], cands: dict[str, list[str]]) -> str:
    shown = [f"{' / '.join(cands[i]) or i} ({i})" if cands[i] else i for i in sorted(ids, key=lambda i: (cands[i], i))]
    more = len(shown) - SHOWN
    return ", ".join(shown[:SHOWN]) + (f", … ({more} more)" if more > 0 else "")


def pick(wanted: str, items: Iterable[tuple[str, str | None]], what: str = "base", where: str = "") -> str:
    """The id of the one item (``(id, name)`` pairs) that ``wanted`` selects: its id, else its exact
    name, else its name compared case-insensitively. Raises SelectionError when none or several
    match, naming the candidates."""
    cands = _candidates(items)
    key = wanted.strip()
    if key in cands:
        return key
    where = f" {where}" if where else ""
    for same in (lambda n: n == key, lambda n: n.casefold() == key.casefold()):
        hits = [i for i, names in cands.items() if any(same(n) for n in names)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise SelectionError(f"{what} {key!r} is ambiguous{where}: {_listing(hits, cands)}; give the id")
    if not cands:
        raise SelectionError(f"no {what} {key!r}{where}: there are none")
    raise SelectionError(f"no {what} {key!r}{where} ({what}s: {_listing(cands, cands)})")


def select(wanted: Sequence[str] | None, items: Iterable[tuple[str, str | None]], what: str = "base",
           where: str = "") -> set[str] | None:
    """The ids ``wanted`` selects (each entry by :func:`pick`), or None when nothing was asked for
    (everything is selected)."""
    if not wanted:
        return None
    items = list(items)
    return {pick(w, items, what, where) for w in wanted}


def select_tables(wanted: Sequence[str] | None, tables: Iterable[tuple[str, str, str | None]],
                  where: str = "") -> set[tuple[str, str]] | None:
    """``(base_id, table_id)`` of the tables ``wanted`` selects among ``(base_id, table_id, name)``.
    Table ids are unique across bases; a name may repeat across bases, and is then ambiguous
    unless ``--base`` narrowed the tables first."""
    tables = list(tables)
    ids = select(wanted, [(t, name) for _b, t, name in tables], "table", where)
    if ids is None:
        return None
    return {(b, t) for b, t, _name in tables if t in ids}


__all__ = ["SelectionError", "pick", "select", "select_tables"]
