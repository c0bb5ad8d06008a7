"""The CLI in this process, as the store tests drive it: emulator limits scaled to its clock, and
no user config or token file from the machine."""

from __future__ import annotations

from click.testing import CliRunner

from snapstore.cli import main

#: the emulator's clock runs this many times faster than real time
SCALE = 50
LIMITS = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE),
          "--penalty", str(30 / SCALE), "--retry-backoff", "0.001", "--max-retries", "2", "--no-progress"]


def run(args: list[str], **env):
    """``snapstore ARGS`` with ``env`` (None unsets a variable)."""
    return CliRunner().invoke(main, args, env={"SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None, **env},
                              catch_exceptions=False)


def twin_stores(root, emu, env: dict, churn: dict, *, enc_args=()) -> tuple:
    """An encrypted and a plain store made by the CLI, each snapshotted (with comments) before and
    after ``emu.churn(**churn)``; ``enc_args`` go to the encrypted store's snapshots only."""
    enc, plain = root / "enc", root / "plain"
    assert run(["init", "--store", str(enc)], **env).exit_code == 0
    assert run(["init", "--store", str(plain), "--no-encryption"], **env).exit_code == 0
    for churned in (False, True):
        if churned:
            emu.churn(**churn)
        for s in (enc, plain):
            extra = list(enc_args) if s == enc else []
            r = run(["snapshot", "--store", str(s), "--comments", *extra, *LIMITS], **env)
            assert r.exit_code == 0, r.output
    return enc, plain
