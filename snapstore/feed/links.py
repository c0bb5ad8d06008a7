"""Links between tables, as the knock-on closure needs them.

A lookup, rollup, count or formula in table T can change when a record T links to changes, and
Airtable may or may not report that change (reference §4.3). So for every link the closure must know
(1) whether T computes something through it, and (2) which T records link to a given record.

(2) is free for two-sided links: the changed record's own inverse cell lists them (its old cells from
the parent snapshot, its new ones from the re-read). A one-sided link (Airtable's self-links have no
inverse field) says nothing on the target's side, so this module keeps a small index of those cells
(source record → target records), stored as an object next to the feed state and updated from every
re-read and every full listing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from snapstore.store import objects
from snapstore.store.crypto import PLAIN, PlainBox

COMPUTED_THROUGH_LINK = {"multipleLookupValues", "rollup", "count"}
LINKS_TYPE = "feed-links"


@dataclass(frozen=True)
class Link:
    table: str  # the table holding the link field
    field: str
    target: str  # the linked table
    inverse: str | None  # the inverse field in target (None: one-sided)


def _fields(table: dict) -> list[dict]:
    return table.get("fields") or []


def links_of(schema: dict) -> list[Link]:
    out = []
    for t in schema.get("tables") or []:
        for f in _fields(t):
            if f.get("type") == "multipleRecordLinks":
                o = f.get("options") or {}
                if o.get("linkedTableId"):
                    out.append(Link(t["id"], f["id"], o["linkedTableId"], o.get("inverseLinkFieldId")))
    return out


@dataclass
class LinkModel:
    """What flows through each link ``(table, field)``: ``reads`` — the linked table's fields the
    table reads through it (a lookup's or rollup's ``fieldIdInLinkedTable``, the primary field for a
    formula over the link itself); ``dependents`` — the table's own fields whose values follow it
    (lookups, rollups, counts over it, and formulas over those, transitively)."""

    links: list[Link]
    reads: dict[tuple[str, str], set[str]]
    dependents: dict[tuple[str, str], set[str]]

    @classmethod
    def from_schema(cls, schema: dict) -> LinkModel:
        links = links_of(schema)
        primary = {t["id"]: t.get("primaryFieldId") for t in schema.get("tables") or []}
        target = {(lk.table, lk.field): lk.target for lk in links}
        reads: dict[tuple[str, str], set[str]] = {}
        dependents: dict[tuple[str, str], set[str]] = {}
        for t in schema.get("tables") or []:
            fields = {f["id"]: f for f in _fields(t)}
            link_ids = {fid for fid, f in fields.items() if f.get("type") == "multipleRecordLinks"}
            through: dict[str, set[str]] = {}  # field -> links it depends on
            for fid, f in fields.items():
                o = f.get("options") or {}
                lf = o.get("recordLinkFieldId")
                if f.get("type") in COMPUTED_THROUGH_LINK and lf in link_ids:
                    through[fid] = {lf}
                    if f.get("type") != "count":
                        reads.setdefault((t["id"], lf), set()).add(o.get("fieldIdInLinkedTable") or "*")
                elif f.get("type") == "formula":
                    for r in (o.get("referencedFieldIds") or []):
                        if r in link_ids:
                            reads.setdefault((t["id"], r), set()).add(primary.get(target.get((t["id"], r))) or "*")
            changed = True
            while changed:  # formulas over formulas: a fixpoint, bounded by the field count
                changed = False
                for fid, f in fields.items():
                    if f.get("type") != "formula":
                        continue
                    refs = set((f.get("options") or {}).get("referencedFieldIds") or [])
                    dep = {r for r in refs if r in link_ids}
                    for r in refs:
                        dep |= through.get(r, set())
                    if dep - through.get(fid, set()):
                        through[fid] = through.get(fid, set()) | dep
                        changed = True
            for fid, deps in through.items():
                for lf in deps:
                    dependents.setdefault((t["id"], lf), set()).add(fid)
        return cls(links, reads, dependents)

    def reads_any(self, table: str, field: str, changed: set[str] | None) -> bool:
        """Whether ``table`` reads, through its link ``field``, any of the ``changed`` fields of the
        linked record (None: unknown, any)."""
        got = self.reads.get((table, field), set())
        if changed is None or "*" in got:
            return bool(got)
        return bool(got & changed)


def computing_links(schema: dict) -> set[tuple[str, str]]:
    """(table, link field) pairs the table computes something through."""
    return set(LinkModel.from_schema(schema).dependents)


def cells(record: dict | None, field_id: str) -> set[str]:
    if not record:
        return set()
    v = (record.get("fields") or {}).get(field_id)
    return {x for x in v if isinstance(x, str)} if isinstance(v, list) else set()


class LinkIndex:
    """Cells of one-sided link fields: ``{(table, field): {source record: frozenset(targets)}}``."""

    def __init__(self, data: dict[tuple[str, str], dict[str, frozenset]] | None = None) -> None:
        self.data = data or {}
        self._reverse: dict[tuple[str, str], dict[str, set[str]]] | None = None
        self.dirty = False

    @staticmethod
    def one_sided(schema: dict) -> list[Link]:
        return [lk for lk in links_of(schema) if not lk.inverse]

    def sources(self, table: str, field: str, target_rid: str) -> set[str]:
        if self._reverse is None:
            rev: dict[tuple[str, str], dict[str, set[str]]] = {}
            for key, m in self.data.items():
                r = rev.setdefault(key, {})
                for src, targets in m.items():
                    for tg in targets:
                        r.setdefault(tg, set()).add(src)
            self._reverse = rev
        return set(self._reverse.get((table, field), {}).get(target_rid, ()))

    def update(self, table: str, fields: Iterable[str], records: Iterable[dict], removed: Iterable[str] = ()) -> None:
        """Replace the entries of these records (re-read) and drop ``removed`` ones."""
        fields = list(fields)
        if not fields:
            return
        for rec in records:
            for f in fields:
                m = self.data.setdefault((table, f), {})
                new = frozenset(cells(rec, f))
                if m.get(rec["id"], frozenset()) != new:
                    self.dirty = True
                    if new:
                        m[rec["id"]] = new
                    else:
                        m.pop(rec["id"], None)
        for rid in removed:
            for f in fields:
                if self.data.get((table, f), {}).pop(rid, None) is not None:
                    self.dirty = True
        self._reverse = None

    def replace_table(self, table: str, fields: Iterable[str], entries: dict[str, dict[str, frozenset]]) -> None:
        """A full listing: the table's entries are exactly these."""
        for key in [k for k in self.data if k[0] == table]:
            del self.data[key]
        for f in fields:
            self.data[(table, f)] = dict(entries.get(f, {}))
        self.dirty = True
        self._reverse = None

    def keep_only(self, schema: dict) -> None:
        live = {(lk.table, lk.field) for lk in self.one_sided(schema)}
        for key in [k for k in self.data if k not in live]:
            del self.data[key]
            self.dirty = True
        self._reverse = None

    # -- storage: one object in the store, named by its hash
    def encode(self, box: PlainBox = PLAIN) -> tuple[str, bytes]:
        doc = {"type": LINKS_TYPE, "v": 1,
               "fields": {f"{t}/{f}": {s: sorted(tg) for s, tg in sorted(m.items())}
                          for (t, f), m in sorted(self.data.items())}}
        return objects.encode(doc, box)

    @classmethod
    def load(cls, store, name: str | None) -> LinkIndex:
        if not name:
            return cls()
        doc = objects.decode(store.backend.get(objects.object_key(name)), store.box)
        if doc.get("type") != LINKS_TYPE:
            raise ValueError("not a feed link index")
        data = {}
        for key, m in (doc.get("fields") or {}).items():
            t, f = key.split("/", 1)
            data[(t, f)] = {s: frozenset(tg) for s, tg in m.items()}
        return cls(data)
