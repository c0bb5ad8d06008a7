"""The CLI tests' world: an emulator on an accelerated clock and a store holding two snapshots of
it, run through the real `snapstore` group in-process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_OK

SCALE = 50
#: Airtable's limits, SCALE times faster (the emulator's clock runs SCALE times faster too).
RATES = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty", str(30 / SCALE),
         "--retry-backoff", "0.001", "--max-retries", "1"]
LIMITS = [*RATES, "--no-progress", "-q"]


def run(args: list[str], env: dict | None = None):
    """`snapstore ARGS` in-process, with no config file or token file from the caller's environment."""
    return CliRunner().invoke(main, args, env={"SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None, **(env or {})},
                              catch_exceptions=False)


@contextmanager
def two_snapshots(root: Path, records: int = 30, attachments: float = 0.1) -> Iterator[dict]:
    """Two bases of two tables, snapshotted, churned, snapshotted again into ``root/store``."""
    ws = generate_workspace(seed=5, bases=2, tables_per_base=2, records_per_table=records,
                            attachment_share=attachments)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(root / "store")}
        assert run(["snapshot", *LIMITS], env).exit_code == EXIT_OK
        emu.churn(seed=1, edit_share=0.1)
        assert run(["snapshot", *LIMITS], env).exit_code == EXIT_OK
        yield {"root": root, "store": root / "store", "env": env, "emu": emu}
