"""A feed test's world: an emulator on a manual clock with its webhooks, a source, a store with the
feed enabled; and what the feed tests compare (record hashes, a result's feed entry)."""

from __future__ import annotations

from datetime import UTC, datetime

import requests

from snapstore.emulator import Emulator, generate_workspace
from snapstore.emulator.clock import ManualClock
from snapstore.feed import manage
from snapstore.feed.hints import feed_hints
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource, RetryPolicy
from snapstore.store import Store

FAST = RetryPolicy(max_retries=3, max_429=3, backoff=0.001, backoff_max=0.01)


class World:
    """An emulator on a manual clock (limits off), a source, a store with the feed enabled."""

    def __init__(self, tmp_path, *, seed: int = 1, computed: bool = False, records: int = 60,
                 tables: int = 3, start: float = 1_780_000_000.0, inverse_modifies: bool = True,
                 rate_model: str | None = None, self_link_lookups: bool = False) -> None:
        ws = generate_workspace(seed=seed, bases=1, tables_per_base=tables, records_per_table=records,
                                attachment_share=0.05, link_share=0.5, comment_share=0.0,
                                self_link_lookups=self_link_lookups)
        self.clock = ManualClock(start)  # start=time.time() when the CLI (wall clock) drives snapshots
        self.lag = 0.0  # how far the client's clock is behind the service's (a jump it did not see)
        # rate limits on: every request takes 0.25 s of the manual clock, so no model can see 5 in a second
        limits = {"rate_limits": False} if rate_model is None else {"rate_model": rate_model, "latency": 0.25}
        self.emu = Emulator(ws, clock=self.clock, webhook_computed_changes=computed,
                            modified_by_inverse=inverse_modifies, **limits).start()
        self.base_id = ws.bases[0].id
        self.src = AirtableSource(self.emu.token, self.emu.url, rate_base=1e6, rate_token=1e6, penalty=0.0,
                                  policy=FAST, timeout=(5, 20))
        self.store = Store.open(tmp_path / "store", create=True)
        self.headers = {"Authorization": f"Bearer {self.emu.token}"}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now() - self.lag, UTC)

    def enable(self) -> list[dict]:
        return manage.enable(self.store, self.src, [{"id": self.base_id, "name": "b"}], now=self.now())

    def snap(self, *, src: AirtableSource | None = None, **opts):
        """A snapshot planned as the CLI plans it (the store's feed hints: no whoami, bases listing or
        schema request while every base is fed)."""
        src = src or self.src
        opts.setdefault("full_every", None)
        hints = feed_hints(self.store, full_every=opts["full_every"], changes=opts.get("changes", "auto"),
                           now=self.now())
        plan = plan_snapshot(src, feed=hints)
        return take_snapshot(self.store, src, plan, SnapshotOptions(attachments=False, now=self.now, **opts))

    def close(self) -> None:
        self.src.close()
        self.emu.stop()

    # -- writes through the API
    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        r = requests.request(method, f"{self.emu.url}/v0/{path}", json=body, headers=self.headers, timeout=20)
        assert r.status_code == 200, r.text
        return r.json()

    @property
    def base(self):
        return self.emu.workspace.base(self.base_id)

    def hook_id(self) -> str:
        (h,) = self.emu.webhooks.hooks(self.base_id)
        return h["id"]


def hashes(store, info) -> dict:
    out = {}
    for b in info.bases:
        for t in b.tables:
            tbl = store.record_hashes(info, b.base_id, t.table_id)
            out[t.table_id] = dict(zip(tbl.column("record_id").to_pylist(), tbl.column("hash").to_pylist(),
                                       strict=True))
    return out


def feed_of(result, base_id) -> dict:
    return next(f for f in result.feed if f["base_id"] == base_id)
