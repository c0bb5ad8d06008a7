"""Stop snapstore at random moments, many times, with both cores busy, and print every failure seen.

    python3 bench/stress_signals.py                  # 60 runs: export, snapshot, restore x TERM/INT/KILL
    python3 bench/stress_signals.py --runs 200 --verbs export --signals TERM

A run fails when the process:
- hangs (still alive GRACE+15 s after the signal),
- dies of anything but the signal it was sent or exits with anything but 130 (TERM/INT) — or 0 when
  it had already finished: then it must have left a complete result,
- leaves a worker process alive,
- leaves a finished-looking `airtable_backup_*` folder behind after exiting 130,
- leaves a store that `snapstore verify` does not pass, or the next run of the same verb fails.
Run by hand; it prints figures and never asserts on time.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snapstore.emulator import Emulator, ScaledClock, generate_workspace

SCALE = 200
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty",
          str(30 / SCALE), "--no-progress", "-q"]
GRACE = 20


def _cli(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from snapstore.entry import run; run()", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _burn(n: int) -> list[subprocess.Popen]:
    """Keep the cores busy, like a loaded CI machine."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def one_run(verb: str, sig: str, env: dict, work: Path, store: Path, base_id: str, rng: random.Random) -> str | None:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    if verb == "export":
        args = ["export", "--store", str(store), "--out", str(out), "--workers", "2", "--format", "all"]
    elif verb == "snapshot":
        args = ["snapshot", "--store", str(store), "--comments", *LIMITS]
    else:
        args = ["restore", "latest", "--store", str(store), "--base", base_id, "--to-base", base_id, "--new",
                *LIMITS[:6]]
    proc = _cli(args, env)
    delay = rng.uniform(0.3, 4.0)
    time.sleep(delay)
    workers = _children(proc.pid)
    finished_before = proc.poll() is not None
    try:
        os.kill(proc.pid, getattr(signal, f"SIG{sig}"))
    except ProcessLookupError:
        pass
    try:
        _out, err = proc.communicate(timeout=GRACE + 15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"HANG: {verb} still alive {GRACE + 15}s after SIG{sig}"
    rc = proc.returncode
    time.sleep(0.2)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    if left:
        return f"WORKERS LEFT: {verb} SIG{sig}: {left}"
    finished = list(out.glob("airtable_backup_*"))
    if sig == "KILL":
        if rc not in (-signal.SIGKILL, 0):
            return f"EXIT {rc} after SIGKILL of {verb}"
    elif rc == 0:
        if verb == "export" and not finished:
            return f"EXIT 0 without a folder after SIG{sig} of export"
    elif rc == -getattr(signal, f"SIG{sig}") and delay < 1.5 and not list(out.iterdir()):
        return "BEFORE START"  # the interpreter was still starting: Python's default action, nothing begun
    elif rc != 130:
        tail = (err or "").strip().splitlines()[-1:] or [""]
        detail = err[-3000:] if rc < 0 else tail[0][:200]
        return f"EXIT {rc} after SIG{sig} of {verb} (finished before signal: {finished_before}): {detail}"
    elif finished:
        return f"FINISHED FOLDER after exit 130 ({verb} SIG{sig}): {finished[0].name}"
    if "Traceback" in (err or "") or "Fatal Python error" in (err or ""):
        return f"TRACEBACK after SIG{sig} of {verb}:\n{err[-3000:]}"
    v = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "verify", "--store",
                        str(store)], capture_output=True, text=True, env=env, timeout=300)
    if v.returncode != 0:
        return f"STORE DAMAGED after SIG{sig} of {verb}: {v.stdout.strip()[-300:]} {v.stderr.strip()[-300:]}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--verbs", default="export,snapshot,restore")
    ap.add_argument("--signals", default="TERM,INT,KILL")
    ap.add_argument("--records", type=int, default=4000, help="records per table (3 tables)")
    ap.add_argument("--burners", type=int, default=2, help="busy processes (default: one per core)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="snapstore-stress-"))
    ws = generate_workspace(seed=a.seed, bases=2, tables_per_base=3, records_per_table=a.records,
                            attachment_share=0.05, comment_share=0.05)
    base_id = ws.bases[-1].id  # restores add new tables there (later snapshots read them too)
    burners = []
    failures: list[str] = []
    counts: dict[str, int] = {}
    try:
        with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
            env = {**os.environ, "AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url,
                   "SNAPSTORE_INTERRUPT_GRACE": str(GRACE), "PYTHONFAULTHANDLER": "1",
                   # an encrypted store, as `snapstore init` makes it: each run derives its key too
                   "SNAPSTORE_PASSWORD": os.environ.get("SNAPSTORE_PASSWORD", "stress")}
            store = work / "store"
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "snapshot", "--store",
                            str(store), *LIMITS], env=env, check=True)
            print(f"store ready: {sum(len(t.records) for b in ws.bases for t in b.tables):,} records "
                  f"in {time.monotonic() - t0:.1f}s; {a.burners} busy processes", flush=True)
            burners = _burn(a.burners)
            verbs, sigs = a.verbs.split(","), a.signals.split(",")
            for i in range(a.runs):
                verb, sig = verbs[i % len(verbs)], sigs[(i // len(verbs)) % len(sigs)]
                if verb == "snapshot":
                    emu.churn(seed=i, edit_share=0.01)
                res = one_run(verb, sig, env, work, store, base_id, rng)
                key = f"{verb} SIG{sig}"
                counts[key] = counts.get(key, 0) + 1
                print(f"[{i + 1}/{a.runs}] {key}: {res or 'ok'}", flush=True)
                if res == "BEFORE START":
                    counts["stopped before the interpreter had started"] = counts.get(
                        "stopped before the interpreter had started", 0) + 1
                elif res:
                    failures.append(res)
    finally:
        for b in burners:
            b.kill()
        shutil.rmtree(work, ignore_errors=True)
    print("\nruns: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    print(f"failures: {len(failures)}")
    for f in failures:
        print(f"  {f}")


if __name__ == "__main__":
    main()
