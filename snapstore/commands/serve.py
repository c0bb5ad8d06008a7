"""``snapstore serve``: the schedules and the web page of one store (snapstore/serve/)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import click

from snapstore.commands.base import command
from snapstore.commands.options import open_store, store_option
from snapstore.commands.output import Output
from snapstore.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a stop signal ends it with exit 0 (a requested stop is not an
        interruption: systemd's `systemctl stop` must not read as a failure). uvicorn re-raises the
        signal after its graceful shutdown, which the CLI would turn into exit 130."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()  # shut down gracefully already: nothing to re-raise

    return Server


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r}: give HOST:PORT, such as 127.0.0.1:8787", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


@command(imports=("snapstore.serve.app",))
@store_option
@click.option("--listen", default="127.0.0.1:8787", show_default=True,
              help="Address and port of the web page. Anything but loopback exposes your data: say so on purpose.")
@click.option("--allow-restore", is_flag=True, help="Let the page write to Airtable (revert records, with a plan first).")
@click.option("--no-schedule", is_flag=True, help="Serve the page only; run no schedule.")
@click.option("--schedule", multiple=True, type=click.UNPROCESSED, hidden=True,
              help="Schedule entries (the config file's [serve] schedule = [...]).")
@click.option("--access-token", envvar="SNAPSTORE_SERVE_TOKEN", hidden=True,
              help="Use this access token instead of a random one (tests).")
def serve(store, listen, allow_restore, no_schedule, schedule, access_token, out: Output) -> None:
    """The store's schedules and a local web page: dashboard, timeline, diff, a record's
    versions, search, downloads, and restore with --allow-restore.

    Open the address it prints (it carries the access token). SIGTERM or Ctrl-C stops it: a run in
    progress is interrupted as the CLI's is, nothing half-committed."""
    import uvicorn

    _Server = _server_class()
    from snapstore import ledger
    from snapstore.commands import password
    from snapstore.commands.runhook import _META
    from snapstore.serve.app import Context, build
    from snapstore.serve.schedule import Scheduler, cli_argv, parse_jobs
    from snapstore.serve.security import Gate, allowed_hosts

    ctx = click.get_current_context()
    host, port = _listen(listen)
    jobs = [] if no_schedule else parse_jobs([dict(e) if isinstance(e, dict) else e for e in schedule])
    st = open_store(store)
    s = ctx.meta.get(_META, {})
    budget = ledger.budget_of(s.get("api_budget"), s.get("plan"))
    config = ctx.meta.get("snapstore.config_path")
    env = dict(os.environ)
    if st.encrypted and not env.get("SNAPSTORE_PASSWORD") and not password.PASSWORD_FILE and password.secrets():
        env["SNAPSTORE_PASSWORD"] = password.secrets()[0]  # a prompted password, for the runs (memory only)
    elif password.PASSWORD_FILE:
        env["SNAPSTORE_PASSWORD_FILE"] = password.PASSWORD_FILE
    sid = st.config.get("store_id")
    for j in jobs:  # the last run of each verb, from the store's ledger: a missed run runs at start
        done = [r for r in ledger.runs(st.backend, None, sid) if r.verb == j.verb]
        j.last = done[-1].time if done else None
    gate = Gate(allowed_hosts(host, port), token=access_token)
    app_ctx = Context(store=st, location=str(store), gate=gate, budget=budget, jobs=jobs,
                      allow_restore=allow_restore, env=env,
                      argv_for=lambda args: cli_argv(args, str(store), config))
    scheduler = Scheduler(jobs, lambda j: cli_argv(j.run_args(), str(store), config), env=env)
    app_ctx.run_job = scheduler.run_soon

    logging.getLogger("snapstore.serve").setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logging.getLogger("snapstore.serve").addHandler(handler)  # (the access log propagates to it)
    if host not in LOOPBACK:
        click.echo(f"WARNING: listening on {host}, not loopback: anyone who can reach this address and has the "
                   "access token sees the store's data. Put it behind TLS, or use 127.0.0.1 and an SSH tunnel.",
                   err=True)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"snapstore serve: {store}, {len(jobs)} schedule(s){', restore allowed' if allow_restore else ''}",
               err=True)
    click.echo(f"open: http://{shown}:{port}/?token={gate.token}", err=True)
    app = build(app_ctx, on_start=scheduler.start if jobs else None, on_stop=scheduler.stop)
    config_ = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="warning", lifespan="on")
    server = _Server(config_)
    try:
        server.run()
    except SystemExit as e:
        if e.code:
            raise UsageError(f"cannot listen on {listen}") from None
    scheduler.stop()
