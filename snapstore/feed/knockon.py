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

from snapstore.feed.links import LinkIndex, cells, computing_links, links_of

#: Hops followed from the directly changed records; beyond it the tables still moving are listed
#: in full. Lookups of lookups of lookups are rare; 4 covers them.
MAX_DEPTH = 4


def full_tables(schema: dict, old_schema: dict | None, full: dict[str, str], touched: dict[str, set[str]],
                direct: dict[str, set[str]], destroyed: dict[str, set[str]],
                destroyed_tables: set[str]) -> dict[str, str]:
    """Tables to list in full, closed over links: a table computing through a link into a listed
    table is listed too (its values may all follow), and so is a table on the other side of a link
    field that was created, deleted or retyped (its inverse field moved too)."""
    out = dict(full)
    comp = computing_links(schema)
    links = links_of(schema)
    for lk in links_of(old_schema or {}):
        if lk.target in destroyed_tables and lk.table not in destroyed_tables:
            out.setdefault(lk.table, "a linked table was deleted")
        if lk.table in destroyed_tables and lk.target not in destroyed_tables:
            out.setdefault(lk.target, "a linked table was deleted")
    for t, fields in touched.items():
        for lk in links + links_of(old_schema or {}):
            if lk.table == t and lk.field in fields:
                out.setdefault(lk.target, "a link field to it changed")
    changed = True
    while changed:
        changed = False
        for lk in links:
            # lk.table computes through lk into a listed table, or a listed table's changed records
            # move the inverse cells of lk.table's records
            if lk.target in out and lk.table not in out and (
                    (lk.table, lk.field) in comp
                    or (lk.inverse and (direct.get(lk.target) or destroyed.get(lk.target)))):
                out[lk.table] = f"it computes through a link to listed table {lk.target}"
                changed = True
    return {t: why for t, why in out.items() if t not in destroyed_tables}


def closure(schema: dict, changed: dict[str, set[str]], destroyed: dict[str, set[str]],
            old: Callable[[str, set[str]], dict[str, dict]], new: dict[str, dict[str, dict]],
            index: LinkIndex, skip: set[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Records to re-read because of the ``changed`` (re-read, cells in ``new``) and ``destroyed``
    ones: ``({table: ids}, tables still moving after MAX_DEPTH hops)``. ``old(table, ids)`` gives the
    parent snapshot's records; ``skip``: tables listed in full anyway."""
    comp = computing_links(schema)
    by_table: dict[str, list] = {}
    for lk in links_of(schema):
        by_table.setdefault(lk.table, []).append(lk)
    one_sided_into: dict[str, list] = {}
    for lk in links_of(schema):
        if not lk.inverse:
            one_sided_into.setdefault(lk.target, []).append(lk)

    seen: dict[str, set[str]] = {t: set(ids) for t, ids in changed.items()}
    for t, ids in destroyed.items():
        seen.setdefault(t, set()).update(ids)
    knock: dict[str, set[str]] = {}

    def add(table: str, ids: set[str]) -> set[str]:
        if table in skip or not ids:
            return set()
        fresh = ids - seen.setdefault(table, set())
        seen[table] |= fresh
        if fresh:
            knock.setdefault(table, set()).update(fresh)
        return fresh

    frontier: dict[str, set[str]] = {}
    # hop 1: directly changed and destroyed records
    for t in set(changed) | set(destroyed):
        ids_c, ids_d = changed.get(t, set()), destroyed.get(t, set())
        olds = old(t, ids_c | ids_d)
        news = new.get(t, {})
        for rid in ids_c | ids_d:
            gone = rid in ids_d or rid not in news
            o, n = olds.get(rid), (None if gone else news.get(rid))
            for lk in by_table.get(t, []):
                oc, nc = cells(o, lk.field), cells(n, lk.field)
                hit: set[str] = set()
                if lk.inverse:
                    hit |= oc ^ nc  # their inverse cells changed
                    if (lk.target, lk.inverse) in comp:
                        hit |= oc | nc
                if hit:
                    frontier.setdefault(lk.target, set()).update(add(lk.target, hit))
            for lk in one_sided_into.get(t, []):
                if gone or (lk.table, lk.field) in comp:
                    frontier.setdefault(lk.table, set()).update(add(lk.table, index.sources(lk.table, lk.field, rid)))
    # further hops: records whose computed values moved, through links computing over them
    for _hop in range(MAX_DEPTH - 1):
        if not any(frontier.values()):
            return knock, set()
        nxt: dict[str, set[str]] = {}
        for t, ids in frontier.items():
            if not ids:
                continue
            olds = old(t, ids)
            for lk in by_table.get(t, []):
                if not lk.inverse or (lk.target, lk.inverse) not in comp:
                    continue
                hit = set()
                for rid in ids:
                    hit |= cells(olds.get(rid), lk.field)
                nxt.setdefault(lk.target, set()).update(add(lk.target, hit))
            for lk in one_sided_into.get(t, []):
                if (lk.table, lk.field) in comp:
                    for rid in ids:
                        nxt.setdefault(lk.table, set()).update(add(lk.table, index.sources(lk.table, lk.field, rid)))
        frontier = nxt
    moving = set()  # where the records still moving would carry on: listed in full
    for t, ids in frontier.items():
        if ids:
            moving |= {lk.target for lk in by_table.get(t, []) if lk.inverse and (lk.target, lk.inverse) in comp}
            moving |= {lk.table for lk in one_sided_into.get(t, []) if (lk.table, lk.field) in comp}
    return knock, moving - skip
