"""`snapstore demo`: the whole job on embedded defaults, against the built-in emulator.

It runs the real commands in-process (and prints each one, so the demo doubles as a tour):
snapshot, a day of churn, snapshot again, log, diff, export.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

import click

from snapstore.commands.base import command
from snapstore.commands.output import Output
from snapstore.commands.params import Finite

#: The demo store's password unless SNAPSTORE_PASSWORD is set (SNAPSTORE_PASSWORD=snapstore-demo opens it afterwards).
DEMO_PASSWORD = "snapstore-demo"


def _run(args: list[str], env: dict[str, str], out: Output) -> None:
    from snapstore.cli import main

    shown = " ".join(a if " " not in a else repr(a) for a in args)
    out.echo(click.style(f"\n$ snapstore {shown}", fg="cyan", bold=True))
    if out.json:  # stdout is for the demo's own JSON
        args = [*args, "-q"]
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        main.main(args, prog_name="snapstore", standalone_mode=False)
    except SystemExit as e:  # a verb's own exit code (e.g. a partial snapshot)
        if e.code not in (0, None):
            raise click.ClickException(f"`snapstore {shown}` exited with {e.code}") from None
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@command(imports=("snapstore.emulator",))
@click.option("--dir", "workdir", default="snapstore-demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the demo's store and export (emptied first if it holds a previous demo).")
@click.option("--bases", type=click.IntRange(1, 20), default=2, show_default=True, help="Bases to generate.")
@click.option("--tables", type=click.IntRange(1, 20), default=3, show_default=True, help="Tables per base.")
@click.option("--records", type=click.IntRange(1, 100_000), default=300, show_default=True, help="Records per table.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated workspace.")
@click.option("--time-scale", type=Finite(min=1.0), default=20.0, show_default=True,
              help="How much faster than real time the emulator's rate-limit clock runs (the client is told "
                   "the same limits, scaled, so nothing is throttled more than the real service would).")
def demo(workdir: str, bases: int, tables: int, records: int, seed: int, time_scale: float, out: Output) -> None:
    """Run snapstore end to end on a generated workspace served by the built-in emulator."""
    from snapstore.emulator import Emulator, ScaledClock, generate_workspace

    root = Path(workdir)
    if root.exists():
        if not (root / ".snapstore-demo").exists() and any(root.iterdir()):
            raise click.ClickException(f"{root} exists and is not a previous demo folder; pick another --dir")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / ".snapstore-demo").write_text("made by `snapstore demo`; safe to delete\n")
    store, exports = root / "store", root / "exports"
    own_pw = os.environ.get("SNAPSTORE_PASSWORD")

    out.echo(f"generating a workspace: {bases} base(s) x {tables} table(s) x {records} records (seed {seed})")
    ws = generate_workspace(seed=seed, bases=bases, tables_per_base=tables, records_per_table=records,
                            attachment_share=0.2, link_share=0.5, comment_share=0.1)
    with Emulator(ws, clock=ScaledClock(time_scale)) as emu:
        out.echo(f"emulator listening on {emu.url} (rate limits on: 5 requests/s per base, 50/s per token, "
                   f"clock x{time_scale:g})")
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
               "SNAPSTORE_PASSWORD": own_pw or DEMO_PASSWORD}  # the demo's store is encrypted, as a user's is
        limits = ["--rate-limit-base", f"{5 * time_scale:g}", "--rate-limit-token", f"{50 * time_scale:g}",
                  "--penalty", f"{30 / time_scale:g}", "--no-progress"]
        _run(["init", "--store", str(store)], env, out)
        _run(["snapshot", "--comments", "--note", "first", *limits], env, out)
        report = emu.churn(seed=seed + 1, edit_share=0.02, add_share=0.01, delete_share=0.01, rename_fields=1,
                           replace_attachments=2)
        out.echo(click.style("\n# a day of work in Airtable: " + _churn_summary(report), fg="yellow"))
        _run(["snapshot", "--comments", "--note", "after a day of work", *limits], env, out)
        _run(["log"], env, out)
        _run(["diff", "latest~1", "latest", "--fields", "--limit", "5"], env, out)
        _run(["export", "latest", "--out", str(exports)], env, out)
    if out.json:
        out.emit({"store": str(store), "exports": str(exports), "encrypted": True,
                  "churn": _churn_summary(report)})
    pw = "$SNAPSTORE_PASSWORD" if own_pw else repr(DEMO_PASSWORD)  # never print the user's own
    out.echo(click.style(f"\ndone: the store is in {store} (encrypted; password {pw}), the export in {exports}",
                         fg="green", bold=True))
    # the one command that opens the demo store in the web page (docs/serve.md)
    env_pw = "" if own_pw else f"SNAPSTORE_PASSWORD={shlex.quote(DEMO_PASSWORD)} "
    out.echo(f"look at it in a browser: {env_pw}snapstore serve --store {shlex.quote(str(store))} --no-schedule")


def _churn_summary(report: dict) -> str:
    tables = report.get("tables", {}).values()
    counts = {k: sum(len(t[k]) for t in tables) for k in ("edited", "added", "deleted", "renamed_fields",
                                                           "replaced_attachments")}
    labels = {"edited": "records edited", "added": "added", "deleted": "deleted",
              "renamed_fields": "field(s) renamed", "replaced_attachments": "attachment(s) replaced"}
    return ", ".join(f"{n} {labels[k]}" for k, n in counts.items() if n) or "no changes"

