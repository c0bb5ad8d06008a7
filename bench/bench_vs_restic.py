"""The store against what a user would otherwise do: dump every table to NDJSON each day and back
the folder up with restic. Same data both ways, in one run.

100,000 records of the benchmark's mix (tests/storegen.py), DAYS daily snapshots at 1% churn.
Prints, per format (by default 3e, last version's default, then 4 and 4e = format 4 encrypted, as
`snapstore init` makes it; any of `--formats 1,2,3,3e,4,4e`) and for restic (if the `restic` binary is installed: Debian's
package, bench only), the repository size on day one and after the last day, and the seconds per
snapshot. Sizes count the whole store, catalog included (wherever it lives: an encrypted store keeps
it in the cache folder), beside restic's whole repository (its index is inside it), and are also
printed without the catalog. Targets, counted whole: day one <= 1.0x restic's repository; after 30
days >= 20x smaller than restic's.

    python3 bench/bench_vs_restic.py --records 100000 --days 30
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from snapstore_exporters.export import export_snapshot  # noqa: E402
from storegen import BASE, SCHEMA, TABLE, churn, make_records  # noqa: E402

from snapstore.canonical import record_bytes  # noqa: E402
from snapstore.store import Store  # noqa: E402


def dir_bytes(root: Path, skip: tuple[str, ...] = ("catalog",)) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.name.startswith(skip))


def store_bytes(store: Store) -> tuple[int, int]:
    """(the store's data, its catalog): the catalog file and its write-ahead log, where they are."""
    cat = Path(store.catalog.path)
    return dir_bytes(Path(store.root)), sum(p.stat().st_size for p in cat.parent.glob(cat.name + "*") if p.is_file())


def snapshot(store: Store, recs: list[dict]) -> None:
    w = store.begin_snapshot()
    w.add_base(BASE, "Bench", SCHEMA)
    tw = w.table(BASE, TABLE)
    tw.add_many(recs)
    tw.finish()
    w.commit()


def run_store(root: Path, days: list[list[dict]], fmt: str) -> dict:
    """``fmt``: a format number, with ``e`` for an encrypted store (restic's repositories always are)."""
    store = Store.init(root, format_version=int(fmt.rstrip("e")), password="bench" if fmt.endswith("e") else None)
    store.backend.fsync = False
    out = {"secs": []}
    for i, recs in enumerate(days):
        t0 = time.perf_counter()
        snapshot(store, recs)
        out["secs"].append(time.perf_counter() - t0)
        if i == 0:
            out["day1_data"], out["day1_catalog"] = store_bytes(store)
            out["day1"] = out["day1_data"] + out["day1_catalog"]
    out["last_data"], out["last_catalog"] = store_bytes(store)
    out["last"] = out["last_data"] + out["last_catalog"]
    t0 = time.perf_counter()
    n = sum(1 for _ in store.records("latest", BASE, TABLE))
    out["read"] = time.perf_counter() - t0
    assert n == len(days[-1])
    for fmts in ("ndjson", "all"):  # the export of the last snapshot, as a user runs it
        t0 = time.perf_counter()
        res = export_snapshot(store, "latest", root.parent / f"export-{root.name}-{fmts}", formats=fmts,
                              attachments=False)
        out[f"export {fmts}"] = time.perf_counter() - t0
        assert res.records == n
    return out


def run_restic(root: Path, days: list[list[dict]]) -> dict | None:
    exe = shutil.which("restic")
    if exe is None:
        return None
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=str(root / "repo"))
    subprocess.run([exe, "init"], env=env, check=True, capture_output=True)
    dump = root / "dump"
    dump.mkdir()
    out = {"secs": []}
    for i, recs in enumerate(days):
        (dump / f"{TABLE}.ndjson").write_bytes(b"\n".join(record_bytes(r) for r in recs) + b"\n")
        t0 = time.perf_counter()
        subprocess.run([exe, "backup", "--quiet", str(dump)], env=env, check=True, capture_output=True)
        out["secs"].append(time.perf_counter() - t0)
        if i == 0:
            out["day1"] = dir_bytes(root / "repo", skip=())
    out["last"] = dir_bytes(root / "repo", skip=())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--formats", default="3e,4,4e",
                    help="store formats to write, old first (comma-separated; 4e: format 4 encrypted)")
    args = ap.parse_args()
    fmts = args.formats.split(",")
    days = [make_records(args.records)]
    for d in range(1, args.days):
        days.append(churn(days[-1], 0.01, seed=d))
    mib = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        res = {f"store format {f}": run_store(Path(tmp) / f"f{f}", days, f) for f in fmts}
        r = run_restic(Path(tmp) / "restic", days)
        if r is not None:
            res["restic (NDJSON)"] = r
    for name, r in res.items():
        first, rest = r["secs"][0], sorted(r["secs"][1:])
        med = rest[len(rest) // 2] if rest else 0.0
        extra = (f"; full read {r['read']:.2f} s, export ndjson {r['export ndjson']:.2f} s, "
                 f"all formats {r['export all']:.2f} s") if "read" in r else ""
        print(f"{name:>16}: day one {r['day1'] / mib:7.2f} MiB, after {args.days} days {r['last'] / mib:7.2f} MiB "
              f"({r['last'] / r['day1']:.2f}x day one); first snapshot {first:.2f} s, median daily {med:.2f} s{extra}")
        if "day1_catalog" in r:
            print(f"{'':>16}  of which the catalog: day one {r['day1_catalog'] / mib:.2f} MiB, after {args.days} "
                  f"days {r['last_catalog'] / mib:.2f} MiB")
    if "restic (NDJSON)" in res:
        rr = res["restic (NDJSON)"]
        for f in fmts:
            s = res[f"store format {f}"]
            print(f"format {f} vs restic, counted whole: day one {s['day1'] / rr['day1']:.2f}x, after {args.days} "
                  f"days {rr['last'] / s['last']:.1f}x smaller; without the catalog: day one "
                  f"{s['day1_data'] / rr['day1']:.2f}x, after {args.days} days {rr['last'] / s['last_data']:.1f}x smaller")
    else:
        print("restic not installed (apt-get install restic): restic's side not measured")
    for old, new in zip(fmts, fmts[1:], strict=False):
        s1, s2 = res[f"store format {old}"], res[f"store format {new}"]
        med = [sorted(x["secs"][1:])[len(x["secs"][1:]) // 2] if len(x["secs"]) > 1 else 0.0 for x in (s1, s2)]
        print(f"format {old} / format {new}: day one {s1['day1'] / s2['day1']:.2f}x, after {args.days} days "
              f"{s1['last'] / s2['last']:.2f}x; first snapshot time {s1['secs'][0] / s2['secs'][0]:.2f}, "
              f"median daily {med[0] / max(med[1], 1e-9):.2f}, full read time {s1['read'] / s2['read']:.2f}, "
              f"export ndjson {s1['export ndjson'] / s2['export ndjson']:.2f}, all formats "
              f"{s1['export all'] / s2['export all']:.2f} "
              f"(old/new: above 1 = format {new} faster)")


if __name__ == "__main__":
    main()
