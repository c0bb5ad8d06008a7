"""Generated records and schemas for store-level tests and benchmarks (no emulator needed)."""

from __future__ import annotations

import random
import string

BASE = "appTESTBASE000001"
TABLE = "tblTESTTABLE00001"
_ALNUM = string.ascii_letters + string.digits

SCHEMA = {
    "tables": [
        {
            "id": TABLE, "name": "Projects", "primaryFieldId": "fldNAME0000000001",
            "fields": [
                {"id": "fldNAME0000000001", "name": "Name", "type": "singleLineText"},
                {"id": "fldNOTES000000001", "name": "Notes", "type": "multilineText"},
                {"id": "fldAMOUNT00000001", "name": "Amount", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
                {"id": "fldSTATUS00000001", "name": "Status", "type": "singleSelect", "options": {"choices": []}},
                {"id": "fldFILES000000001", "name": "Files", "type": "multipleAttachments", "options": {"isReversed": False}},
                {"id": "fldDONE0000000001", "name": "Done", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
            ],
            "views": [{"id": "viwGRID000000001", "name": "Grid view", "type": "grid"}],
        }
    ]
}

WORDS = "alpha beta gamma delta invoice client review draft final budget plan launch report urgent".split()


def rid(rng: random.Random, prefix: str = "rec") -> str:
    return prefix + "".join(rng.choice(_ALNUM) for _ in range(14))


def make_record(rng: random.Random, i: int) -> dict:
    fields = {
        "fldNAME0000000001": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}",
        "fldNOTES000000001": " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))),
        "fldAMOUNT00000001": round(rng.uniform(0, 10000), 2),
        "fldSTATUS00000001": rng.choice(["Todo", "Doing", "Done"]),
    }
    if rng.random() < 0.5:
        fields["fldDONE0000000001"] = True
    if rng.random() < 0.1:
        fields["fldFILES000000001"] = [{
            "id": rid(rng, "att"), "url": f"https://example.invalid/{rng.random()}", "filename": "f.png",
            "size": 100, "type": "image/png",
            "thumbnails": {"small": {"url": f"https://example.invalid/t/{rng.random()}", "width": 36, "height": 36}},
        }]
    return {"id": rid(rng), "createdTime": "2024-05-01T10:00:00.000Z", "fields": fields}


def make_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [make_record(rng, i) for i in range(n)]


def churn(records: list[dict], share: float, seed: int = 1) -> list[dict]:
    """Edit `share` of the records (a new Notes text); returns the edited list (copies)."""
    rng = random.Random(seed)
    out = [dict(r, fields=dict(r["fields"])) for r in records]
    for i in rng.sample(range(len(out)), int(len(out) * share)):
        out[i]["fields"]["fldNOTES000000001"] += f" edited {rng.random()}"
    return out


def snapshot(store, records, *, schema=SCHEMA, base=BASE, table=TABLE):
    snap = store.begin_snapshot()
    snap.add_base(base, "Test base", schema)
    tw = snap.table(base, table)
    for r in records:
        tw.add(r)
    tw.finish()
    return snap.commit()


def many_tables_snapshot(store, sizes: list[int], seed: int = 100):
    """One snapshot of a base with a table per entry of ``sizes`` (SCHEMA's fields), holding that many
    records each. Returns (snapshot info, table ids, {table id: its records})."""
    import copy

    tables = [f"tblSMALL{k:09d}" for k in range(len(sizes))]
    schema = {"tables": []}
    for tid in tables:
        t = copy.deepcopy(SCHEMA["tables"][0])
        t["id"], t["name"] = tid, f"Small {tid[-2:]}"
        schema["tables"].append(t)
    snap = store.begin_snapshot()
    snap.add_base(BASE, "Test base", schema)
    records = {}
    for k, (tid, n) in enumerate(zip(tables, sizes, strict=True)):
        records[tid] = [dict(r, id=f"rec{k:02d}{r['id'][5:]}") for r in make_records(n, seed=seed + k)]
        tw = snap.table(BASE, tid)
        for r in records[tid]:
            tw.add(r)
        tw.finish()
    return snap.commit(), tables, records
