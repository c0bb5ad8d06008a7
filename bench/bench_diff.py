"""Benchmark: `snapstore diff` between two large snapshots with a small churn.

Builds two snapshots of one table through the store's writer API (N records, ~600 B each, a dozen
fields, long text, attachments), the second with `--churn` of the records touched (80 % edited,
10 % added, 10 % deleted; edits include long-text rewrites and attachment replacements), then
times the record-level diff (targets: < 1 s at 1M records / 1 %) and the field-level diff
(`--fields`, target < 5 s). Prints figures; never passes or fails on time.

    python bench/bench_diff.py                    # 1,000,000 records, 1 % churn
    python bench/bench_diff.py --records 100000   # quicker
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapstore.commands.diff_render import render  # noqa: E402
from snapstore.ops.diff import diff_snapshots  # noqa: E402
from snapstore.store import Store  # noqa: E402

BASE, TABLE = "appBench000000001", "tblBench000000001"
N_ATT = 200
N_REPL = 50  # few files: each new attachment costs the writer a catalog connection (~25 ms)
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega pipeline deal contract renewal invoice customer").split()
STATUSES = ["Lead", "Qualified", "Proposal", "Negotiation", "Won", "Lost"]

SCHEMA = {"tables": [{
    "id": TABLE, "name": "Deals", "primaryFieldId": "fldName",
    "fields": [
        {"id": "fldName", "name": "Name", "type": "singleLineText"},
        {"id": "fldStatus", "name": "Status", "type": "singleSelect",
         "options": {"choices": [{"id": f"sel{i}", "name": s} for i, s in enumerate(STATUSES)]}},
        {"id": "fldAmount", "name": "Amount", "type": "currency", "options": {"precision": 2, "symbol": "$"}},
        {"id": "fldOwner", "name": "Owner", "type": "singleCollaborator"},
        {"id": "fldEmail", "name": "Email", "type": "email"},
        {"id": "fldNotes", "name": "Notes", "type": "multilineText"},
        {"id": "fldTags", "name": "Tags", "type": "multipleSelects", "options": {"choices": []}},
        {"id": "fldLinks", "name": "Contacts", "type": "multipleRecordLinks", "options": {}},
        {"id": "fldDate", "name": "Close date", "type": "date", "options": {}},
        {"id": "fldDone", "name": "Done", "type": "checkbox", "options": {}},
        {"id": "fldScore", "name": "Score", "type": "number", "options": {"precision": 1}},
        {"id": "fldFiles", "name": "Files", "type": "multipleAttachments", "options": {}},
    ], "views": []}]}


def att_id(k: int) -> str:
    return f"att{k:014d}"


def make_record(i: int, version: int = 0) -> dict:
    r = random.Random(i * 7919 + version)
    words = [r.choice(WORDS) for _ in range(24)]
    f = {
        "fldName": f"Deal {i} " + " ".join(words[:3]),
        "fldStatus": r.choice(STATUSES),
        "fldAmount": round(r.random() * 100000, 2),
        "fldOwner": {"id": f"usr{r.randrange(50):014d}", "email": f"user{r.randrange(50)}@example.com",
                     "name": f"User {r.randrange(50)}"},
        "fldEmail": f"contact{i}@example.com",
        "fldTags": sorted(set(r.sample(WORDS, 3))),
        "fldLinks": [f"rec{r.randrange(10**9):014d}" for _ in range(r.randrange(3))],
        "fldDate": f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}",
        "fldDone": r.random() < 0.3,
        "fldScore": round(r.random() * 10, 1),
    }
    if i % 3 == 0:
        f["fldNotes"] = "\n".join(" ".join(words[j: j + 8]) for j in range(0, 24, 8))
    if i % 5 == 0:
        k = (i // 5) % N_ATT
        f["fldFiles"] = [{"id": att_id(k), "filename": f"file{k}.pdf", "size": 64, "type": "application/pdf",
                          "url": f"https://dl.example/{k}?sig={r.random()}"}]
    return {"id": f"rec{i:014d}", "createdTime": "2026-01-01T00:00:00.000Z",
            "fields": {k: v for k, v in f.items() if v not in (None, False)}}


def edit(rec: dict, i: int) -> dict:
    r = random.Random(i)
    f = dict(rec["fields"])
    kind = i % 4
    if kind == 0 and "fldNotes" in f:
        lines = f["fldNotes"].split("\n")
        lines[1] = "edited: " + " ".join(r.choice(WORDS) for _ in range(6))
        f["fldNotes"] = "\n".join(lines)
    elif kind == 1 and "fldFiles" in f:
        k = N_ATT + (i % N_REPL)
        f["fldFiles"] = [{"id": att_id(k), "filename": f"file{k}.pdf", "size": 64, "type": "application/pdf"}]
    elif kind == 2:
        f["fldStatus"] = r.choice(STATUSES)
        f["fldAmount"] = round(r.random() * 100000, 2)
    else:
        f["fldName"] = f["fldName"] + " (edited)"
    return {**rec, "fields": f}


def write_snapshot(store: Store, n: int, *, edits=frozenset(), deleted=frozenset(), added: int = 0, atts=()) -> object:
    t0 = time.perf_counter()
    w = store.begin_snapshot(note="bench")
    for k in atts:
        if not w.known_attachment(att_id(k)):
            data = (b"%d" % k).ljust(64, b".")
            w.add_attachment(att_id(k), io.BytesIO(data), size=len(data), filename=f"file{k}.pdf", mime="application/pdf")
    w.add_base(BASE, "Bench", SCHEMA)
    tw = w.table(BASE, TABLE)
    for i in range(n + added):
        if i in deleted:
            continue
        rec = make_record(i)
        if i in edits:
            rec = edit(rec, i)
        tw.add(rec)
    tw.finish()
    info = w.commit()
    print(f"  snapshot {info.id}: {info.records:,} records in {time.perf_counter() - t0:.1f} s", flush=True)
    return info


def timed(fn, repeat: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--store", help="reuse/keep a store here (default: a temporary folder, removed after)")
    args = ap.parse_args()

    tmp = None
    path = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="bench-diff-")) / "store"
    if not args.store:
        tmp = path.parent
    try:
        store = Store.open(path, create=True)
        n = args.records
        touched = int(n * args.churn)
        rng = random.Random(42)
        sample = rng.sample(range(n), int(touched * 0.9))
        edits = frozenset(sample[: int(touched * 0.8)])
        deleted = frozenset(sample[int(touched * 0.8):])
        added = touched - len(edits) - len(deleted)
        snaps = store.list_snapshots()
        if len(snaps) >= 2:
            a, b = snaps[1], snaps[0]
            print(f"reusing snapshots {a.id} → {b.id} in {path}")
        else:
            print(f"building 2 snapshots of {n:,} records in {path} "
                  f"(churn {args.churn:.1%}: {len(edits):,} edited, {added:,} added, {len(deleted):,} deleted)")
            a = write_snapshot(store, n, atts=range(N_ATT))
            b = write_snapshot(store, n, edits=edits, deleted=deleted, added=added, atts=range(N_ATT, N_ATT + N_REPL))

        print(f"\nrecord-level diff ({args.repeat} runs):")
        times, d = timed(lambda: diff_snapshots(store, a.id, b.id), args.repeat)
        t = d.totals
        print(f"  {t['added']:,} added, {t['removed']:,} removed, {t['changed']:,} changed")
        print(f"  diff_snapshots: first {times[0]:.3f} s, median {statistics.median(times):.3f} s (target < 1 s)")
        times, _ = timed(lambda: render(diff_snapshots(store, a.id, b.id), "json"), args.repeat)
        print(f"  + JSON rendering of every record id: median {statistics.median(times):.3f} s")
        times, _ = timed(lambda: diff_snapshots(store, b.id, a.id), args.repeat)
        print(f"  B→A: median {statistics.median(times):.3f} s")

        print(f"\nfield-level diff, --fields ({args.repeat} runs):")
        times, d = timed(lambda: diff_snapshots(store, a.id, b.id, fields=True), args.repeat)
        nf = sum(len(r.fields or []) for td in d.tables for r in td.changed)
        print(f"  {t['changed']:,} changed records, {nf:,} field changes; "
              f"{t['added'] + t['removed'] + 2 * t['changed']:,} blobs read")
        print(f"  diff_snapshots(fields=True): first {times[0]:.3f} s, median {statistics.median(times):.3f} s "
              f"(target < 5 s)")
        times, out = timed(lambda: render(diff_snapshots(store, a.id, b.id, fields=True), "text", limit=0), 1)
        print(f"  + full text rendering ({len(out.splitlines()):,} lines): {times[0]:.3f} s")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
