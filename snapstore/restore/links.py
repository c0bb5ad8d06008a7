"""Which side of each two-sided link a restore writes.

Airtable fills in the inverse side of a link itself, appending the linking record to the linked
record's list in the order the links are written. So of each pair of link fields one side is written
whole, and the other only for the records whose list those writes would leave in another order than
the snapshot's. Measured on 3,000 records with 7 link fields (3 pairs and a self-link): 245 link
updates writing both sides, 156 writing one, against a floor of 135 with no list put in order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from snapstore.restore.plan import BATCH, Plan

#: Up to this many pairs every choice of sides is costed (2**6 = 64); beyond, each pair is chosen alone.
EXHAUSTIVE_PAIRS = 6

#: (the field left to Airtable, the lists Airtable builds there, [(table, records written whole),
#: (table, records whose lists are put in order)])
Way = tuple[str, dict[str, list[str]], list[tuple[str, set[str]]]]


def built(links: dict[str, list[str]], targets: dict[str, str]) -> dict[str, list[str]]:
    """Target record -> the records linking to it, in the order their links are written (``links``'
    order: the source's): the list Airtable appends to on the inverse side."""
    out: dict[str, list[str]] = {}
    for rid, v in links.items():
        for target in v:
            if target in targets:
                out.setdefault(target, []).append(rid)
    return out


def disordered(links: dict[str, list[str]], made: dict[str, list[str]], targets: dict[str, str]) -> set[str]:
    """The records whose lists in ``links`` differ from what ``made`` leaves."""
    return {rid for rid, v in links.items() if [x for x in v if x in targets] != made.get(rid, [])}


def one_side_per_pair(plan: Plan, source, record_map: Callable[[str], dict[str, str]]
                      ) -> tuple[dict[str, dict[str, list[str]]], int]:
    """The sides left to Airtable: source field id -> {record id: the list Airtable builds there};
    every field not named is written whole. And the floor of link updates (one side of each pair,
    no list put in order). The records of one table share one update request, so the sides are
    chosen over all pairs together, for the fewest requests."""
    pairs = [(t, f) for t in plan.tables for f in t.fields if f.action == "inverse" and f.inverse_of]
    paired = {f.src_id for _, f in pairs} | {f.inverse_of for _, f in pairs}
    cells: dict[str, dict[str, list[str]]] = {}  # link field -> record -> its links
    whole: dict[str, set[str]] = {}  # table -> records written whatever the choice (one-sided links)
    for t in plan.tables:
        fields = [f.src_id for f in t.fields if f.src_id in paired]
        single = [f.src_id for f in t.fields if f.action == "link" and f.src_id not in paired]
        if not fields and not single:
            continue
        mapped = record_map(t.src_id)
        for fid in fields:
            cells[fid] = {}
        for rec in source.records(plan.base_id, t.src_id):
            if rec["id"] not in mapped:
                continue
            row = rec.get("fields") or {}
            for fid in fields:
                if v := row.get(fid):
                    cells[fid][rec["id"]] = v
            if any(row.get(fid) for fid in single):
                whole.setdefault(t.src_id, set()).add(rec["id"])
    ways: list[tuple[Way, Way]] = []
    for t, g in pairs:
        side = plan.table(g.link_table)
        if side is None:
            continue
        f, on_t, on_side = g.inverse_of, record_map(t.src_id), record_map(side.src_id)
        on_g, on_f = built(cells[f], on_t), built(cells[g.src_id], on_side)
        ways.append(((g.src_id, on_g, [(side.src_id, set(cells[f])),
                                       (t.src_id, disordered(cells[g.src_id], on_g, on_side))]),
                     (f, on_f, [(t.src_id, set(cells[g.src_id])),
                                (side.src_id, disordered(cells[f], on_f, on_t))])))

    def cost(choice: tuple[int, ...], fixes: bool = True) -> int:
        per = {k: set(v) for k, v in whole.items()}
        for way, c in zip(ways, choice, strict=True):
            for tid, recs in way[c][2][:None if fixes else 1]:
                per.setdefault(tid, set()).update(recs)
        return sum(-(-len(r) // BATCH) for r in per.values())

    if len(ways) <= EXHAUSTIVE_PAIRS:
        choices = list(itertools.product((0, 1), repeat=len(ways)))
        best, floor = min(choices, key=cost), min(cost(c, fixes=False) for c in choices)
    else:
        best = tuple(min((0, 1), key=lambda c, w=w: sum(len(r) for _, r in w[c][2])) for w in ways)
        floor = cost(best, fixes=False)
    return {way[c][0]: way[c][1] for way, c in zip(ways, best, strict=True)}, floor
