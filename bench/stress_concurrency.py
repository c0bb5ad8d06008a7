"""Two machines on one store: snapshots, forget, prune and exports in random interleavings, on a
local store and on S3 (SeaweedFS), and every failure seen.

    python3 bench/stress_concurrency.py                        # 240 s per backend, local and s3
    python3 bench/stress_concurrency.py --seconds 60 --backends local

Each "machine" is its own cache folder (SNAPSTORE_CACHE). A round churns the emulator's
workspace, then starts 2-4 commands at once, each on a machine picked at random: snapshot (often
both machines at once: siblings of one parent), ``forget --keep-last 3``, ``prune --max-unused
0%``, ``export`` of the latest snapshot. A command fails the run when it exits with anything but
0, or 11 for a writer that found the store locked (a local store has one writer at a time; on
S3 prune is exclusive), or prints "a bug". After every round ``verify`` must pass; at the end
``verify --read-data`` must pass from a third machine with no cache, and every kept snapshot
must export. Run by hand; it prints figures and never asserts on time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from snapstore.emulator import Emulator, ScaledClock, generate_workspace

SCALE = 200
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty",
          str(30 / SCALE), "--no-progress", "-q"]
#: exit codes a command may end with in a race that is not a failure: 11, a writer refused by a lock
ALLOWED = {"snapshot": {0, 11}, "forget": {0, 11}, "prune": {0, 11}, "export": {0}}


def _argv(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from snapstore.entry import run; run()", *args]


def _cmd(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(_argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _args(verb: str, store: str, out: Path) -> list[str]:
    if verb == "snapshot":
        return ["snapshot", "--store", store, *LIMITS]
    if verb == "forget":
        return ["forget", "--store", store, "--keep-last", "3", "-q"]
    if verb == "prune":
        return ["prune", "--store", store, "--max-unused", "0%", "--no-progress"]
    return ["export", "--store", store, "--out", str(out), "--format", "ndjson", "--no-progress", "-q"]


@contextlib.contextmanager
def _s3(work: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import seaweedfs  # the suite's SeaweedFS runner (loopback, free ports)

    data = work / "weed"
    data.mkdir()
    with seaweedfs(data) as s3:
        yield {"AWS_ENDPOINT_URL": s3["endpoint"], "AWS_ACCESS_KEY_ID": s3["key"],
               "AWS_SECRET_ACCESS_KEY": s3["secret"], "AWS_REGION": s3["region"]}, f"s3://{s3['bucket']}/stress/store"


def run_backend(kind: str, seconds: float, records: int, rng: random.Random, work: Path) -> tuple[Counter, list[str]]:
    counts: Counter = Counter()
    failures: list[str] = []
    ws = generate_workspace(seed=rng.randrange(1 << 30), bases=2, tables_per_base=2, records_per_table=records,
                            attachment_share=0.05, comment_share=0.0)
    with contextlib.ExitStack() as stack:
        if kind == "s3":
            aws, store = stack.enter_context(_s3(work))
        else:
            aws, store = {}, str(work / "store")
        emu = stack.enter_context(Emulator(ws, clock=ScaledClock(SCALE)))
        base = {**os.environ, **aws, "AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url,
                "SNAPSTORE_PASSWORD": os.environ.get("SNAPSTORE_PASSWORD", "stress"),
                "SNAPSTORE_PRUNE_READER_WAIT": "120"}
        machines = {m: {**base, "SNAPSTORE_CACHE": str(work / f"cache-{m}")} for m in ("A", "B")}
        subprocess.run(_argv(_args("snapshot", store, work)), env=machines["A"], check=True,
                       capture_output=True)
        deadline = time.monotonic() + seconds
        rnd = 0
        while time.monotonic() < deadline:
            rnd += 1
            emu.churn(seed=rnd, edit_share=0.05, add_share=0.01, delete_share=0.01)
            plan = [("snapshot", "A"), ("snapshot", "B")] if rng.random() < 0.5 else []
            plan += [(rng.choice(["snapshot", "forget", "prune", "export", "export"]), rng.choice("AB"))
                     for _ in range(rng.randint(1, 2))]
            rng.shuffle(plan)
            procs = []
            for i, (verb, m) in enumerate(plan):
                out = work / f"out-{rnd}-{i}"
                out.mkdir()
                procs.append((verb, m, out, _cmd(_args(verb, store, out), machines[m])))
            for verb, m, out, p in procs:
                _o, err = p.communicate(timeout=900)
                counts[f"{verb} exit {p.returncode}"] += 1
                if p.returncode not in ALLOWED[verb] or "a bug" in err:
                    failures.append(f"{kind} round {rnd}: {verb} on {m} exit {p.returncode}: {err.strip()[-300:]}")
                shutil.rmtree(out, ignore_errors=True)
            v = subprocess.run(_argv(["verify", "--store", store]), env=machines["A"],
                               capture_output=True, text=True)
            counts["verify"] += 1
            if v.returncode != 0:
                failures.append(f"{kind} round {rnd}: verify: {v.stdout.strip()[-400:]} {v.stderr.strip()[-200:]}")
            print(f"  {kind} round {rnd}: {' + '.join(f'{verb}@{m}' for verb, m, _o, _p in procs)} -> "
                  f"{' '.join(str(p.returncode) for _v, _m, _o, p in procs)}; verify {v.returncode}", flush=True)
        counts["rounds"] = rnd
        fresh = {**base, "SNAPSTORE_CACHE": str(work / "cache-fresh")}
        v = subprocess.run(_argv(["verify", "--store", store, "--read-data"]), env=fresh,
                           capture_output=True, text=True)
        if v.returncode != 0:
            failures.append(f"{kind} final verify --read-data (fresh cache): {v.stdout.strip()[-400:]}")
        log = subprocess.run(_argv(["log", "--store", store, "--json"]), env=fresh, capture_output=True,
                             text=True)
        ids = [s["id"] for s in json.loads(log.stdout or "[]")]
        counts["snapshots kept"] = len(ids)
        for sid in ids:
            out = work / f"final-{sid}"
            out.mkdir()
            e = subprocess.run(_argv([*_args("export", store, out), sid]), env=fresh, capture_output=True,
                               text=True)
            if e.returncode != 0:
                failures.append(f"{kind} final export of {sid} (fresh cache): exit {e.returncode}: {e.stderr[-300:]}")
            shutil.rmtree(out, ignore_errors=True)
    return counts, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=240, help="time per backend (rounds started before it ends finish)")
    ap.add_argument("--backends", default="local,s3")
    ap.add_argument("--records", type=int, default=300, help="records per table (2 bases x 2 tables)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    total = 0
    for kind in a.backends.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"snapstore-concurrency-{kind}-"))
        t0 = time.monotonic()
        try:
            counts, failures = run_backend(kind, a.seconds, a.records, rng, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        total += len(failures)
        print(f"{kind}: {counts['rounds']} rounds in {time.monotonic() - t0:.0f} s; "
              f"{counts['snapshots kept']} snapshots kept at the end")
        print("  " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()) if k not in ("rounds", "snapshots kept")))
        print(f"  failures: {len(failures)}")
        for f in failures:
            print(f"    {f}")
    print(f"failures: {total}")


if __name__ == "__main__":
    main()
