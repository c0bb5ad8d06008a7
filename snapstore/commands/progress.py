"""The progress of a long verb, drawn from the library's events (the library reports, this module
renders): a redrawn block on a terminal."""

from __future__ import annotations

import sys
import threading
import time

from snapstore import units
from snapstore.source import AirtableSource


class Progress:
    """Per base and table progress from the run's events: a redrawn block on a terminal."""

    def __init__(self, source: AirtableSource, stream=None, interval: float = 0.25) -> None:
        self.source = source
        self.stream = stream or sys.stderr
        self.interval = interval
        self.lock = threading.Lock()
        self.tables: dict[tuple[str, str], dict] = {}
        self.bases: dict[str, str] = {}
        self.att_new = 0
        self.att_scheduled = 0
        self.att_bytes = 0
        self.total = 0
        self.t0 = time.monotonic()
        self._lines = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, kind: str, info: dict) -> None:
        with self.lock:
            if kind == "start":
                self.total = info.get("tables", 0)
            elif kind == "base_start":
                self.bases[info["base_id"]] = info["name"]
            elif kind == "table_start":
                self.tables[(info["base_id"], info["table_id"])] = {
                    "name": info["name"], "status": "listing", "records": 0, "restarts": 0}
            elif kind == "table_page":
                self.tables[(info["base_id"], info["table_id"])]["records"] = info["records"]
            elif kind == "table_restart":
                self.tables[(info["base_id"], info["table_id"])]["restarts"] = info["restarts"]
            elif kind == "table_done":
                r = info["result"]
                self.tables[(info["base_id"], info["table_id"])].update(status="done", records=r.records)
            elif kind == "table_failed":
                self.tables[(info["base_id"], info["table_id"])].update(status="FAILED")
            elif kind == "attachments_scheduled":
                self.att_scheduled += info.get("count", 0)
            elif kind == "attachment":
                self.att_new += 1
                self.att_bytes += info.get("bytes") or 0

    def start(self) -> Progress:
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._clear()

    def _clear(self) -> None:
        if self._lines:
            self.stream.write(f"\x1b[{self._lines}F\x1b[J")
            self.stream.flush()
            self._lines = 0

    def lines(self) -> list[str]:
        s = self.source.stats.snapshot()
        dt = max(time.monotonic() - self.t0, 1e-6)
        with self.lock:
            done = sum(1 for t in self.tables.values() if t["status"] != "listing")
            records = sum(t["records"] for t in self.tables.values())
            out = [
                f"snapshot: {done}/{self.total or len(self.tables)} tables, {records:,} records, "
                f"{s['requests']:,} requests ({s['requests'] / dt:.1f}/s), {s['rate_limited_429']} x 429, "
                f"attachments {self.att_new}/{self.att_scheduled} new ({units.size(self.att_bytes)}), {dt:.0f}s"
            ]
            for (base_id, _tid), t in self.tables.items():
                if t["status"] == "listing":
                    extra = f", restarted {t['restarts']}x" if t["restarts"] else ""
                    out.append(f"  {self.bases.get(base_id, base_id)} / {t['name']}: "
                               f"{t['records']:,} records{extra}")
        return out[:20]

    def draw(self) -> None:
        text = self.lines()
        width = 150
        self._clear()
        self.stream.write("".join(line[:width] + "\n" for line in text))
        self.stream.flush()
        self._lines = len(text)
