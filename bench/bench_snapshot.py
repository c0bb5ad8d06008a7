"""Benchmark `snapstore snapshot`: local throughput and the share of Airtable's rate limit used.

    python bench/bench_snapshot.py            # full (about a minute)
    python bench/bench_snapshot.py --quick    # smaller, for a smoke run

Prints figures, never passes or fails:

1. local work, records/s: the whole snapshot pipeline (orchestration, JSON decoding, canonical
   records, hashing, compression, packs, catalog) fed from pages held in memory, so neither the
   network nor the emulator counts. First snapshot (every record new) and an unchanged one.
2. end to end against the emulator with rate limits off (the emulator is single-threaded Python,
   so this is bounded by the emulator, not by snapstore).
3. share of the rate limit used with limits on: requests per second while listing, against
   5 requests/s per base (one base) and 50/s per token (ten bases in parallel). The emulator's
   clock runs ``--scale`` times real time and the throttle is set to match.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snapstore.emulator import Emulator, generate_workspace  # noqa: E402
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot  # noqa: E402
from snapstore.source import AirtableSource, RequestStats, Throttle  # noqa: E402
from snapstore.store import Store  # noqa: E402


class ReplaySource:
    """Serves pages recorded from the emulator, decoding their JSON on each read like the client."""

    api_url = "replay"

    def __init__(self, user, bases, schemas, pages) -> None:
        self.user, self.bases_, self.schemas, self.pages = user, bases, schemas, pages
        self.stats = RequestStats()
        self.download_stats = RequestStats()
        self.cancel = threading.Event()
        self.throttle = Throttle(rate_base=1e6, rate_token=1e7, cold_start=False)
        self.policy = type("P", (), {"backoff": 0.0})()

    def preflight(self):
        return self.user

    def bases(self):
        return self.bases_

    def schema(self, base_id):
        return self.schemas[base_id]

    def iter_pages(self, base_id, table_id, *, comment_counts=False):
        for raw in self.pages[(base_id, table_id)]:
            self.stats.count("list_records", base_id, 200, len(raw))
            yield orjson.loads(raw)["records"]

    @contextlib.contextmanager
    def open_attachment(self, url):
        yield io.BytesIO(b"")


@contextlib.contextmanager
def emulator_process(*args: str):
    """`snapstore emulator` in its own process (its own GIL, like a real server): (url, token, admin)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    token = "patBENCH.0123456789"
    code = "import sys; from snapstore.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, "emulator", "--port", str(port), "--token", token, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    url = f"http://127.0.0.1:{port}"
    try:
        for line in proc.stdout:  # wait for "listening"
            if "listening" in line:
                break
        yield url, token, lambda path, method="GET": requests.request(method, f"{url}/__admin/{path}").json()
    finally:
        proc.terminate()
        proc.wait(10)


def record_pages(emu: Emulator) -> ReplaySource:
    src = AirtableSource(emu.token, emu.url, rate_base=1e6, rate_token=1e7, penalty=0.01)
    bases = src.bases()
    schemas = {b["id"]: src.schema(b["id"]) for b in bases}
    pages = {}
    for b in bases:
        for t in schemas[b["id"]]["tables"]:
            url = f"{emu.url}/v0/{b['id']}/{t['id']}"
            raws, offset = [], None
            while True:
                params = {"returnFieldsByFieldId": 1, "pageSize": 100, **({"offset": offset} if offset else {})}
                r = src.api.session.get(url, params=params)
                raws.append(r.content)
                offset = r.json().get("offset")
                if not offset:
                    break
            pages[(b["id"], t["id"])] = raws
    user = src.whoami()
    src.close()
    return ReplaySource(user, bases, schemas, pages)


def local_pipeline(n_bases: int, n_records: int) -> None:
    ws = generate_workspace(seed=1, bases=n_bases, tables_per_base=3, records_per_table=n_records,
                            attachment_share=0.0, comment_share=0.0)
    with Emulator(ws, rate_limits=False) as emu:
        replay = record_pages(emu)
    total = ws.record_count()
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(Path(d) / "store", create=True)
        for label in ("first snapshot (all new)", "unchanged snapshot"):
            plan = plan_snapshot(replay)
            t = time.perf_counter()
            take_snapshot(store, replay, plan, SnapshotOptions(attachments=False))
            dt = time.perf_counter() - t
            print(f"  local work, {label}: {total:,} records in {dt:.2f}s = {total / dt:,.0f} records/s")
        # the JSON decoding alone, for scale
        t = time.perf_counter()
        n = sum(len(orjson.loads(raw)["records"]) for raws in replay.pages.values() for raw in raws)
        dt = time.perf_counter() - t
        print(f"  (of which JSON decoding alone: {n / dt:,.0f} records/s)")


def end_to_end(n_bases: int, n_records: int) -> None:
    args = ["--bases", str(n_bases), "--tables", "3", "--records", str(n_records), "--attachment-share", "0",
            "--comment-share", "0", "--seed", "2", "--no-rate-limit"]
    total = n_bases * 3 * n_records
    with emulator_process(*args) as (url, token, _admin), tempfile.TemporaryDirectory() as d:
        src = AirtableSource(token, url, rate_base=1e6, rate_token=1e7, penalty=0.01)
        store = Store.open(Path(d) / "store", create=True)
        for label in ("first", "unchanged"):
            t = time.perf_counter()
            take_snapshot(store, src, plan_snapshot(src), SnapshotOptions(attachments=False))
            dt = time.perf_counter() - t
            print(f"  end to end, emulator unthrottled (own process), {label}: {total:,} records in {dt:.2f}s = "
                  f"{total / dt:,.0f} records/s")
        src.close()


def rate_share(n_bases: int, pages_per_table: int, scale: float) -> None:
    args = ["--bases", str(n_bases), "--tables", "1", "--records", str(pages_per_table * 100),
            "--attachment-share", "0", "--comment-share", "0", "--link-share", "0", "--seed", "3",
            "--time-scale", f"{scale:g}"]
    starts: dict[str, list[float]] = {}
    lock = threading.Lock()

    with emulator_process(*args) as (url, token, admin), tempfile.TemporaryDirectory() as d:
        src = AirtableSource(token, url, rate_base=5 * scale, rate_token=50 * scale, penalty=30 / scale)
        acquire = src.throttle.acquire

        def timed_acquire(base_id):  # when each request of a base was let through
            ticket = acquire(base_id)
            if base_id is not None:
                with lock:
                    starts.setdefault(base_id, []).append(time.perf_counter())
            return ticket

        store = Store.open(Path(d) / "store", create=True)
        plan = plan_snapshot(src)
        src.throttle.acquire = timed_acquire
        admin("counters", "DELETE")
        t = time.perf_counter()
        take_snapshot(store, src, plan, SnapshotOptions(attachments=False))
        wall = time.perf_counter() - t
        c = admin("counters")
        src.close()
    # n requests paced by the limit span n-1 intervals; the pacing rate while listing
    per_base = [(len(ts) - 1) / (ts[-1] - ts[0]) / scale for ts in starts.values() if len(ts) > 1]
    everything = sorted(t for ts in starts.values() for t in ts)
    total_rate = (len(everything) - 1) / (everything[-1] - everything[0]) / scale
    avg = sum(per_base) / len(per_base)
    lists = c["routes"]["list_records"]["requests"]
    print(f"  {n_bases} base(s) x {pages_per_table} pages, clock x{scale:g}: per base {avg:.2f} requests/s "
          f"= {avg / 5:.0%} of 5/s; all bases together {total_rate:.1f} requests/s = {total_rate / 50:.0%} of "
          f"50/s; {lists} list requests, 429s: {c['total']['429s']}; whole run {wall:.1f}s "
          f"({lists / wall / scale:.1f} list requests/s including the store's per-table work)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scale", type=float, default=2.0, help="emulator clock speed for the rate-limit runs")
    args = ap.parse_args()
    q = args.quick
    print("1. local work (pages from memory, no network):")
    local_pipeline(2 if q else 4, 1000 if q else 3000)
    print("2. against the emulator, rate limits off:")
    end_to_end(2, 1000 if q else 2000)
    print("3. share of the rate limit used, limits on (throttle matched to the emulator):")
    rate_share(1, 20 if q else 60, args.scale)
    rate_share(10, 8 if q else 20, 1.0)
    rate_share(12, 8 if q else 20, 1.0)


if __name__ == "__main__":
    main()
