"""Options every verb shares, declared once: the store, the Airtable source (token, endpoint,
rate limits) and ``-n/--dry-run``. Declaring them imports neither the store nor the Airtable
client (pyairtable alone takes 0.4 s): ``--help`` needs neither."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import click

from snapstore.commands.base import IMPORTS_ATTR
from snapstore.commands.params import Finite
from snapstore.constants import DEFAULT_API_URL
from snapstore.errors import SnapstoreError

if TYPE_CHECKING:
    from snapstore.source import AirtableSource
    from snapstore.store import Store


#: Where the store lives when neither --store, $SNAPSTORE_STORE nor the config file says otherwise.
DEFAULT_STORE = "snapstore-data"

store_option = click.option(
    "--store", "-s", envvar="SNAPSTORE_STORE", default=DEFAULT_STORE, show_default=True, show_envvar=True,
    help="The store: a folder, or s3://bucket/prefix (endpoint and credentials from AWS_ENDPOINT_URL, "
         "AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
)


def dry_run_option(help_text: str):
    """``-n/--dry-run``: the one meaning of ``-n`` in every verb."""
    return click.option("--dry-run", "-n", "dry_run", is_flag=True, help=help_text)


def progress_option(f):
    """``--progress/--no-progress``: the live display on stderr (default: on a terminal, unless -q
    or --json); the same flag on every verb that draws one."""
    return click.option("--progress/--no-progress", default=None,
                        help="Progress display on stderr (default: on when stderr is a terminal).")(f)


def open_store(path: str, *, create: bool = False) -> Store:
    """Open a store; its errors (no store: exit 10, locked: 11, damaged: 1) reach the one place that
    prints them (snapstore/commands/base.py)."""
    from snapstore.store import Store

    store = Store.open(path, create=create)
    _register_reader(store)
    return store


#: Verbs that read snapshot data (packs): each registers as a reader, so a prune deletes nothing
#: they may read until they are done (snapstore/store/readers.py).
READING_VERBS = frozenset({"show", "diff", "history", "find", "cat", "export", "restore", "stats", "verify", "sql"})


def _register_reader(store: Store) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.info_name not in READING_VERBS:
        return
    from snapstore.store import readers

    key = readers.register(store.backend, ctx.info_name)
    ctx.call_on_close(lambda: readers.unregister(store.backend, key))
    if key is not None and store.remote:  # a prune may have finished since the cache was synced
        from snapstore.store.catalog import CatalogBusy

        try:
            store.sync()
        except CatalogBusy:  # another process of this machine writes the cache (as Store.open)
            pass


class TokenError(SnapstoreError):
    """No token, or a token file that cannot be read (exit 1, nothing written)."""


def source_options(f):
    """The options of a verb that talks to Airtable (snapshot, check, restore, feed)."""
    opts = [
        click.option("--token", envvar="AIRTABLE_TOKEN", show_envvar=True, default=None,
                     help="Airtable personal access token (prefer the environment or --token-file)."),
        click.option("--token-file", type=click.Path(dir_okay=False), envvar="AIRTABLE_TOKEN_FILE",
                     show_envvar=True, default=None, help="Read the token from this file."),
        click.option("--api-url", envvar="AIRTABLE_API_URL", show_envvar=True, default=DEFAULT_API_URL,
                     show_default=True, help="API endpoint (the emulator's URL in tests and demos)."),
        click.option("--rate-limit-base", type=Finite(min=0.01), default=5.0, show_default=True,
                     help="Requests per second per base (Airtable: 5). Higher values only make sense "
                          "against the time-accelerated emulator."),
        click.option("--rate-limit-token", type=Finite(min=0.01), default=50.0, show_default=True,
                     help="Requests per second for the whole token (Airtable: 50)."),
        click.option("--penalty", type=Finite(min=0.0), default=30.0, show_default=True,
                     help="Seconds a base is paused after a 429 (Airtable: 30)."),
        click.option("--retry-backoff", type=Finite(min=0.0), default=0.5, hidden=True,
                     help="First backoff delay for 5xx/connection retries (tests)."),
        click.option("--max-retries", type=click.IntRange(min=0), default=8, hidden=True),
    ]
    for o in reversed(opts):
        f = o(f)
    setattr(f, IMPORTS_ATTR, (*getattr(f, IMPORTS_ATTR, ()), "snapstore.source"))  # (preloaded: base.preload)
    return f


def read_token(token: str | None, token_file: str | None) -> str:
    """The token from --token/$AIRTABLE_TOKEN, else from the token file; never from anywhere else."""
    if token and token.strip():
        return token.strip()
    if token_file:
        p = Path(token_file).expanduser()
        try:
            value = p.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise TokenError(f"cannot read the token file {p}: {e.strerror or e}") from None
        if not value:
            raise TokenError(f"the token file {p} is empty")
        return value
    raise TokenError("no Airtable token: set AIRTABLE_TOKEN, or pass --token-file FILE (or --token)")


def _rate_folder():
    """Where the machine's snapstore processes share each base's rate (snapstore.source.shared_budget)."""
    from snapstore.store.store import cache_root

    return cache_root() / "rate"


def make_source(kw: dict, cancel: threading.Event | None = None) -> tuple[AirtableSource, str]:
    """The Airtable client the source options describe, and the token (for log redaction)."""
    from snapstore.source import AirtableSource, RetryPolicy, SourceError

    token = read_token(kw.get("token"), kw.get("token_file"))
    policy = RetryPolicy(max_retries=kw.get("max_retries", 8), backoff=kw.get("retry_backoff", 0.5))
    try:
        src = AirtableSource(
            token, kw.get("api_url") or DEFAULT_API_URL,
            rate_base=kw["rate_limit_base"], rate_token=kw["rate_limit_token"], penalty=kw["penalty"],
            policy=policy, cancel=cancel, shared_budget=_rate_folder(),
        )
    except SourceError as e:
        raise TokenError(str(e)) from None
    return src, token
