"""A store whose bases share table names and differ in case: what the selection tests (--base,
--table, groups of snapshots) run against."""

from __future__ import annotations

import copy

from snapstore.store import Store
from tests.storegen import SCHEMA, make_records

#: Two bases whose names differ only in case, and a third: each with a "Projects" table.
BASES = {"appSALES000000001": "Sales", "appSALESLOW000001": "sales", "appOPS00000000001": "Operations"}


def table_id(base_id: str, name: str = "Projects") -> str:
    return f"tbl{name[:4].upper()}{base_id[3:9]}{'0' * 4}"


def take(store: Store, bases=BASES, edit: int = 0):
    """One snapshot of ``bases`` (a Projects table each, Operations also Tasks); ``edit`` changes
    that many records' Name."""
    w = store.begin_snapshot()
    for bid, name in bases.items():
        names = ["Projects"] + (["Tasks"] if name == "Operations" else [])
        schema = {"tables": []}
        for tname in names:
            t = copy.deepcopy(SCHEMA["tables"][0])
            t["id"], t["name"] = table_id(bid, tname), tname
            schema["tables"].append(t)
        w.add_base(bid, name, schema)
        for tname in names:
            tw = w.table(bid, table_id(bid, tname))
            for i, r in enumerate(make_records(5, seed=sum(map(ord, bid + tname)))):
                r = dict(r, id=f"rec{bid[3:8]}{tname[:3]}{i:06d}", fields=dict(r["fields"]))
                if i < edit:
                    r["fields"]["fldNAME0000000001"] = f"edited {i}"
                tw.add(r)
            tw.finish()
    return w.commit()
