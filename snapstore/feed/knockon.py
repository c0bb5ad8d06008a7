"""Knock-on changes: records whose bytes change because a record they link to changed.

Two kinds, both followed from the old cells (parent snapshot) and the new cells (re-read):

- a link cell of R changed (added or removed targets): the targets' inverse cells changed too;
- R changed at all: records computing something through a link to R (lookup, rollup, count, a
  formula over them) may have new values. Those records may in turn be looked up elsewhere, so this
  is followed transitively, at most ``MAX_DEPTH`` hops; what is still moving after that is listed
  in full (the bound keeps a dense link graph from costing more than a listing).
"""

from __future__ import annotations

from collections.abc import Callable

from snapstore.feed.links import Link, LinkIndex, LinkModel, cells, links_of

#: Hops followed from the directly changed records; beyond it the tables still moving are listed
#: in full. Lookups of lookups of lookups are rare; 4 covers them.
MAX_DEPTH = 4


def full_tables(schema: dict, old_schema: dict | None, full: dict[str, str], touched: dict[str, set[str]],
                destroyed_tables: set[str]) -> dict[str, str]:
    """Tables to list in full, closed over links: a table reading, through a link, a field that was
    created, deleted or retyped in a listed table is listed too, and so is the table on the other
    side of such a link field (its inverse field moved with it) or of a deleted table."""
    out = dict(full)
    m = LinkModel.from_schema(schema)
    links = links_of(schema) + links_of(old_schema or {})
    for lk in links_of(old_schema or {}):
        if lk.target in destroyed_tables and lk.table not in destroyed_tables:
            out.setdefault(lk.table, "a linked table was deleted")
        if lk.table in destroyed_tables and lk.target not in destroyed_tables:
            out.setdefault(lk.target, "a linked table was deleted")
    moved = {t: set(f) for t, f in touched.items()}
    for t, fields in touched.items():
        for lk in links:
            if lk.table == t and lk.field in fields:
                out.setdefault(lk.target, "a link field to it changed")
                moved.setdefault(lk.target, set()).add(lk.inverse or "*")
    changed = True
    while changed:
        changed = False
        for lk in m.links:
            if lk.target in moved and lk.table not in out and m.reads_any(lk.table, lk.field, moved[lk.target]):
                out[lk.table] = f"it reads a changed field of {lk.target} through a link"
                moved.setdefault(lk.table, set()).update(m.dependents.get((lk.table, lk.field), set()))
                changed = True
    return {t: why for t, why in out.items() if t not in destroyed_tables}


def closure(schema: dict, changed: dict[str, set[str]], destroyed: dict[str, set[str]],
            old: Callable[[str, set[str]], dict[str, dict]], new: dict[str, dict[str, dict]],
            index: LinkIndex, skip: set[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Records to re-read because of the ``changed`` (re-read, cells in ``new``) and ``destroyed``
    ones: ``({table: ids}, tables still moving after MAX_DEPTH hops)``. ``old(table, ids)`` gives the
    parent snapshot's records; ``skip``: tables listed in full anyway.

    Each knock-on record carries the set of its fields that may have moved, so a hop goes on only
    through links that read one of them: a lookup of a plain field in a record that only had its
    rollups recomputed does not move (on the emulator's schema, with every table looking up its
    neighbours' Name, Ratio and Quantity, this keeps the closure to the records linked to the
    changed ones instead of the whole link component)."""
    m = LinkModel.from_schema(schema)
    by_table: dict[str, list[Link]] = {}
    one_sided_into: dict[str, list[Link]] = {}
    for lk in m.links:
        by_table.setdefault(lk.table, []).append(lk)
        if not lk.inverse:
            one_sided_into.setdefault(lk.target, []).append(lk)
    direct = {t: set(changed.get(t, set())) | set(destroyed.get(t, set())) for t in set(changed) | set(destroyed)}
    moved: dict[tuple[str, str], set[str]] = {}  # knock-on record -> fields that may have moved
    knock: dict[str, set[str]] = {}
    frontier: list[tuple[str, str, set[str]]] = []

    def push(table: str, rid: str, fields: set[str]) -> None:
        if table in skip or not fields or rid in direct.get(table, ()):
            return
        prev = moved.get((table, rid), set())
        fresh = fields - prev
        if not fresh:
            return
        moved[(table, rid)] = prev | fresh
        knock.setdefault(table, set()).add(rid)
        frontier.append((table, rid, fresh))

    # hop 1: directly changed and destroyed records (which of their fields moved is not known)
    for t, ids in direct.items():
        olds = old(t, ids)
        news = new.get(t, {})
        for rid in ids:
            gone = rid in destroyed.get(t, ()) or rid not in news
            o, n = olds.get(rid), (None if gone else news.get(rid))
            for lk in by_table.get(t, []):
                if not lk.inverse:
                    continue
                deps = m.dependents.get((lk.target, lk.inverse), set())
                oc, nc = cells(o, lk.field), cells(n, lk.field)
                for x in oc ^ nc:  # their inverse cells changed
                    push(lk.target, x, {lk.inverse} | deps)
                if m.reads_any(lk.target, lk.inverse, None):
                    for x in oc | nc:
                        push(lk.target, x, deps)
            for lk in one_sided_into.get(t, []):
                deps = m.dependents.get((lk.table, lk.field), set())
                for src in index.sources(lk.table, lk.field, rid):
                    if gone:
                        push(lk.table, src, {lk.field} | deps)  # its link cell lost this record
                    elif m.reads_any(lk.table, lk.field, None):
                        push(lk.table, src, deps)
    # further hops: records whose computed values moved, through links reading those values
    for _hop in range(MAX_DEPTH - 1):
        if not frontier:
            return knock, set()
        todo, frontier[:] = list(frontier), []
        by_t: dict[str, list[tuple[str, set[str]]]] = {}
        for t, rid, fields in todo:
            by_t.setdefault(t, []).append((rid, fields))
        for t, items in by_t.items():
            olds = old(t, {rid for rid, _f in items})
            for rid, fields in items:
                for lk in by_table.get(t, []):
                    if lk.inverse and m.reads_any(lk.target, lk.inverse, fields):
                        deps = m.dependents.get((lk.target, lk.inverse), set())
                        for x in cells(olds.get(rid), lk.field):
                            push(lk.target, x, deps)
                for lk in one_sided_into.get(t, []):
                    if m.reads_any(lk.table, lk.field, fields):
                        deps = m.dependents.get((lk.table, lk.field), set())
                        for src in index.sources(lk.table, lk.field, rid):
                            push(lk.table, src, deps)
    moving = set()  # where the records still moving would carry on: listed in full
    for t, _rid, fields in frontier:
        moving |= {lk.target for lk in by_table.get(t, []) if lk.inverse and m.reads_any(lk.target, lk.inverse, fields)}
        moving |= {lk.table for lk in one_sided_into.get(t, []) if m.reads_any(lk.table, lk.field, fields)}
    return knock, moving - skip
