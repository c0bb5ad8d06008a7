"""`snapstore emulator`: run the local Airtable Web API emulator until Ctrl-C."""

from __future__ import annotations

import json
import os
import shlex

import click

from snapstore.commands.base import command
from snapstore.commands.output import Output

_SHARE = click.FloatRange(0.0, 1.0)
#: The client's own defaults (snapstore snapshot/check/restore), which match Airtable's limits.
CLIENT_RATE_BASE, CLIENT_RATE_TOKEN, CLIENT_PENALTY = 5.0, 50.0, 30.0


def _num(x: float) -> str:
    return f"{x:g}"


def client_flags(rate_base: float, rate_token: float, penalty: float, scale: float) -> list[str]:
    """The client flags matching an emulator's limits on a clock ``scale`` times real time."""
    return ["--rate-limit-base", _num(rate_base * scale), "--rate-limit-token", _num(rate_token * scale),
            "--penalty", _num(penalty / scale)]


def client_setup(url: str, token: str, *, rate_base: float, rate_token: float, penalty: float, scale: float,
                 rate_limits: bool = True) -> list[str]:
    """Lines to paste into the shell that runs snapstore against this emulator: the two variables
    the snapshot command reads, and, when the emulator's limits are not Airtable's (a faster clock,
    other limits), the client flags that match them. Without them, a client pacing itself at 5
    requests/s against a clock k times faster is k times slower than it need be, and a 429 costs a
    real 30 s instead of 30/k."""
    lines = ["# in the shell that runs snapstore:", f"export AIRTABLE_API_URL={shlex.quote(url)}",
             f"export AIRTABLE_TOKEN={shlex.quote(token)}"]
    base, tok, pen = rate_base * scale, rate_token * scale, penalty / scale
    if not rate_limits:
        lines.append("# rate limits are off: any client pace works")
    elif (base, tok, pen) != (CLIENT_RATE_BASE, CLIENT_RATE_TOKEN, CLIENT_PENALTY):
        why = f"the emulator's clock runs {_num(scale)}x" if scale != 1.0 else "the emulator's limits are not Airtable's"
        lines.append(f"# {why}: give snapshot, check and restore the matching limits:")
        lines.append(f"#   snapstore snapshot {' '.join(client_flags(rate_base, rate_token, penalty, scale))}")
    return lines


@command("emulator", imports=("snapstore.emulator",))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="TCP port; 0 lets the OS choose a free one.")
@click.option("--token", default=None, help="Token the clients must send (default: a new random token).")
@click.option("--workspace", "workspace_path", type=click.Path(exists=True, dir_okay=True), default=None,
              help="Load this workspace (a folder with workspace.json, or the JSON file) instead of generating one.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generated workspace.")
@click.option("--bases", type=click.IntRange(0, 10_000), default=2, show_default=True, help="Bases to generate.")
@click.option("--tables", type=click.IntRange(1, 1000), default=3, show_default=True, help="Tables per base.")
@click.option("--records", type=click.IntRange(0, 10_000_000), default=100, show_default=True,
              help="Records per table.")
@click.option("--attachment-share", type=_SHARE, default=0.2, show_default=True,
              help="Share of records with attachments (0-1).")
@click.option("--link-share", type=_SHARE, default=0.5, show_default=True,
              help="Share of records linked to another table (0-1).")
@click.option("--comment-share", type=_SHARE, default=0.1, show_default=True,
              help="Share of records with comments (0-1).")
@click.option("--save", "save_path", type=click.Path(dir_okay=True), default=None,
              help="Save the workspace here on start and again on exit (with the changes made through the API).")
@click.option("--rate-limit-base", type=click.IntRange(1), default=5, show_default=True,
              help="Requests per second allowed per base.")
@click.option("--rate-limit-token", type=click.IntRange(1), default=50, show_default=True,
              help="Requests per second allowed per token.")
@click.option("--penalty", type=click.FloatRange(0.0), default=30.0, show_default=True,
              help="Seconds of 429 answers after a rate limit is exceeded.")
@click.option("--time-scale", type=click.FloatRange(0.0, min_open=True), default=1.0, show_default=True,
              help="Run the emulator's clock this many times faster than real time (limits, penalty, TTLs).")
@click.option("--iterator-ttl", type=click.FloatRange(0.0, min_open=True), default=300.0, show_default=True,
              help="Idle seconds after which a list-records offset expires (422 LIST_RECORDS_ITERATOR_NOT_AVAILABLE).")
@click.option("--attachment-ttl", type=click.FloatRange(0.0, min_open=True), default=7200.0, show_default=True,
              help="Seconds an attachment URL stays valid (then 410).")
@click.option("--no-rate-limit", is_flag=True, default=False, help="Disable rate limiting.")
@click.option("--rate-model", type=click.Choice(["window", "bucket"]), default="window", show_default=True,
              help="How a second is counted (Airtable does not document it): a strict sliding one-second window, "
                   "or a token bucket refilled at the limit that allows a short burst (--burst).")
@click.option("--burst", type=click.IntRange(1), default=None,
              help="Requests a base's token bucket holds (--rate-model bucket; default: two seconds' worth).")
@click.option("--latency", default=None, metavar="SECONDS|DIST",
              help="Time each request takes, in clock seconds: a number, or uniform:LO:HI, normal:MEAN:SD, "
                   "lognormal:MEDIAN:SIGMA.")
@click.option("--link-options", type=click.Choice(["refuse", "accept"]), default="refuse", show_default=True,
              help="A link field created with prefersSingleRecordLink (or another option the write format does "
                   "not list): refused with 422, as Airtable documents, or kept.")
@click.option("--inverse-modifies/--inverse-does-not-modify", default=True, show_default=True,
              help="Whether a link change made from the other side (or a linked record deleted) updates a "
                   "record's last-modified time and user (undocumented upstream).")
@click.option("--url-downloads/--no-url-downloads", default=True, show_default=True,
              help='Download {"url": ...} attachments (loopback only; others are dropped, as Airtable drops '
                   "a file it cannot fetch).")
def emulator(host: str, port: int, token: str | None, workspace_path: str | None, seed: int, bases: int,
             tables: int, records: int, attachment_share: float, link_share: float, comment_share: float,
             save_path: str | None, rate_limit_base: int, rate_limit_token: int, penalty: float,
             time_scale: float, iterator_ttl: float, attachment_ttl: float, no_rate_limit: bool, rate_model: str,
             burst: int | None, latency: str | None, link_options: str, inverse_modifies: bool,
             url_downloads: bool, out: Output) -> None:
    """Run a local Airtable Web API emulator (for tests, demos and benchmarks).

    Prints `export AIRTABLE_API_URL=... AIRTABLE_TOKEN=...` lines to paste into the shell that runs
    snapstore and, when its clock or limits differ from Airtable's (--time-scale), the client flags
    that match. Point pyairtable at it with Api(TOKEN, endpoint_url=URL). Admin endpoints (loopback only):
    GET /__admin/counters, POST /__admin/churn, POST|GET|DELETE /__admin/faults,
    POST /__admin/expire-iterators, POST /__admin/clock/advance, POST /__admin/save."""
    from snapstore.emulator import Emulator, ScaledClock, SystemClock, Workspace, generate_workspace
    from snapstore.emulator.ratelimit import latency_sampler
    from snapstore.emulator.workspace_io import WorkspaceFormatError

    try:
        latency_sampler(latency)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--latency") from None

    if workspace_path is not None:
        try:
            ws = Workspace.load(workspace_path)
        except (OSError, ValueError, KeyError, WorkspaceFormatError) as e:
            raise click.ClickException(f"cannot load workspace {workspace_path}: {e}") from e
        if ws.recomputed_at_load:  # the file's computed cells disagreed with their definitions: say which
            fixed = ws.recomputed_at_load
            first = ", ".join(f"{x['table']}/{x['record']}/{x['field']}" for x in fixed[:3])
            out.echo(f"recomputed {len(fixed)} computed cell(s) that disagreed with their definitions "
                     f"(table/record/field: {first}{', ...' if len(fixed) > 3 else ''})", err=True)
    else:
        ws = generate_workspace(seed=seed, bases=bases, tables_per_base=tables, records_per_table=records,
                                attachment_share=attachment_share, link_share=link_share,
                                comment_share=comment_share)
    if save_path:
        ws.save(save_path)
    clock = ScaledClock(time_scale) if time_scale != 1.0 else SystemClock()
    emu = Emulator(ws, token=token, rate_limit_base=rate_limit_base, rate_limit_token=rate_limit_token,
                   penalty=penalty, clock=clock, iterator_ttl=iterator_ttl, attachment_ttl=attachment_ttl,
                   rate_limits=not no_rate_limit, host=host, port=port, rate_model=rate_model, burst=burst,
                   latency=latency, link_options=link_options, modified_by_inverse=inverse_modifies,
                   fetch_urls=url_downloads)
    try:
        emu.start()
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e}") from e
    try:  # a Ctrl-C from here on (even while the lines below print) is the normal way to stop
        if out.json:  # one line, so that a script can read it while the emulator runs
            click.echo(json.dumps({"url": emu.url, "token": emu.token, "workspace": repr(ws),
                                   "client_flags": client_flags(rate_limit_base, rate_limit_token, penalty, time_scale)}))
        out.echo(f"Airtable emulator listening on {emu.url}")
        out.echo(f"workspace: {ws!r}")

        out.echo("\n".join(client_setup(emu.url, emu.token, rate_base=rate_limit_base, rate_token=rate_limit_token,
                                        penalty=penalty, scale=time_scale, rate_limits=not no_rate_limit)))
        out.echo("Press Ctrl-C to stop.")
        emu.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        if save_path:
            with emu.lock:
                ws.save(save_path)
            out.echo(f"saved workspace to {os.path.abspath(save_path)}")

