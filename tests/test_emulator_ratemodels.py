"""snapstore against both of the emulator's rate-limit models (a strict one-second window, a token
bucket with a short burst), with a per-request latency: a snapshot through the CLI makes exactly its
request floor and earns no 429, under either. The emulator's clock runs 50x (limits, penalty and
latency are clock seconds), and the client is given the matching limits, as `snapstore emulator`
tells a user to; nothing waits for a real penalty."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, ScaledClock, generate_workspace

SCALE = 50
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty", str(30 / SCALE)]


@pytest.mark.parametrize("model", ["window", "bucket"])
def test_snapshot_stays_at_its_request_floor_without_429s(tmp_path, model):
    ws = generate_workspace(seed=9, bases=2, tables_per_base=2, records_per_table=260, attachment_share=0.0,
                            comment_share=0.0)
    with Emulator(ws, clock=ScaledClock(SCALE), rate_model=model, burst=10, latency="lognormal:0.2:0.4") as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(tmp_path / "s"),
               "SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None}
        r = CliRunner().invoke(main, ["snapshot", "--no-progress", "--no-attachments", *LIMITS], env=env)
        assert r.exit_code == 0, r.output
        c = emu.counters.snapshot()
        pages = sum(math.ceil(len(t.records) / 100) for b in ws.bases for t in b.tables)
        assert c["routes"]["list_records"]["requests"] == pages  # ceil(records/100) a table, no retry
        assert c["routes"]["get_schema"]["requests"] == len(ws.bases)
        assert c["total"]["429s"] == 0 and c["statuses"].get("429", 0) == 0
        assert emu.latency_total > 0  # every request took its (simulated) time
