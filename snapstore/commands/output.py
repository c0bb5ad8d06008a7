"""What every verb prints through: the flags every command shares (``--json``, ``-q``, ``-v``) and
the one JSON shape.

``--json``: stdout holds one JSON document and nothing else (an error too: base.py prints it).
``-q``: nothing on success; a failure is still its one line on stderr (cron mails only failures).
``-v``: the library's debug log lines on stderr.

JSON shape, as restic's: a snapshot's ``id`` is its full id and ``short_id`` its first 8
characters; times are ISO 8601 in UTC (``...Z``); sizes are bytes (plain integers).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import click

from snapstore import isotime
from snapstore.constants import DIFF_FORMATS
from snapstore.errors import Reported

_META_KEY = "snapstore.output"


@dataclass
class Output:
    """A command's output settings, set by the shared flags (and ``--format json``)."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    color: str = "auto"  # --color auto|always|never

    def colored(self, stream=None) -> bool:
        """Colour on ``stream`` (stdout): ``--color always|never``, else a terminal without NO_COLOR."""
        if self.color != "auto":
            return self.color == "always"
        return (stream or sys.stdout).isatty() and "NO_COLOR" not in os.environ

    def echo(self, text: str = "", *, err: bool = False) -> None:
        """A line for a person: on stdout (stderr with ``--json``, which keeps stdout for JSON);
        nothing with ``-q``."""
        if self.quiet:
            return
        click.echo(text, err=err or self.json)

    def fail(self, error: Exception) -> NoReturn:
        """End a verb whose result (already printed) is a failure: with ``--json`` the document said
        so and only the exit code follows; otherwise ``error`` is the one line (all ``-q`` prints)."""
        if self.json:
            raise Reported(getattr(error, "exit_code", 1))
        raise error

    def emit(self, doc: Any) -> None:
        """The command's JSON document on stdout (printed with ``-q`` too: it was asked for)."""
        click.echo(dumps(doc))


def output_of(ctx: click.Context) -> Output:
    """The Output of the command being run (created on first use)."""
    return ctx.meta.setdefault(_META_KEY, Output())  # click shares meta along the context chain


def current() -> Output:
    """The Output of the command click is running now."""
    return output_of(click.get_current_context())


def _flag(attr: str):
    def callback(ctx: click.Context, _param: click.Parameter, value) -> None:
        if value:
            setattr(output_of(ctx), attr, True)
    return callback


def standard_options() -> list[click.Option]:
    """The flags every verb takes (added by ``command()`` unless the verb declares its own)."""
    return [
        click.Option(["--json", "json_output"], is_flag=True, expose_value=False, callback=_flag("json"),
                     help="Print one JSON document on stdout (errors too) and nothing else."),
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_flag("quiet"),
                     help="Nothing on success; one line on failure (cron)."),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_flag("verbose"),
                     help="Debug lines on stderr."),
        click.Option(["--color"], type=click.Choice(["auto", "always", "never"]), default="auto",
                     expose_value=False, callback=_set_color, show_default=True,
                     help="Colour: auto is a terminal without $NO_COLOR."),
    ]


def _set_color(ctx: click.Context, _param: click.Parameter, value: str) -> None:
    output_of(ctx).color = value


def json_format_callback(ctx: click.Context, _param: click.Parameter, value):
    """``--format json``: the older spelling of ``--json`` where a verb has ``--format``."""
    if value == "json":
        output_of(ctx).json = True
    return value




def format_option(f):
    """``--format text|json|markdown`` of diff and history (json: the same as ``--json``)."""
    return click.option("--format", "fmt", type=click.Choice(DIFF_FORMATS), default="text", show_default=True,
                        callback=json_format_callback,
                        help="text for a terminal, json for scripts (= --json), markdown for a ticket.")(f)


# ------------------------------------------------------------------------------------------------
# the JSON shape


def iso(t: datetime) -> str:
    """``2026-01-02T03:04:05Z``: snapstore.isotime's one format."""
    return isotime.iso(t)


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return iso(o)
    if hasattr(o, "to_dict"):
        return shape(o.to_dict())
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def shape(doc: Any) -> Any:
    """The one JSON shape: wherever a library document gives a short ``id`` with its ``full_id``
    (a snapshot), ``id`` becomes the full id and ``short_id`` the short one."""
    if isinstance(doc, dict):
        out = {k: shape(v) for k, v in doc.items()}
        if isinstance(out.get("full_id"), str) and isinstance(out.get("id"), str):
            full = out.pop("full_id")
            rest = {k: v for k, v in out.items() if k != "id"}
            return {"id": full, "short_id": full[:8], **rest}
        return out
    if isinstance(doc, list | tuple):
        return [shape(v) for v in doc]
    return doc


def dumps(doc: Any) -> str:
    return json.dumps(shape(doc), indent=2, ensure_ascii=False, default=_default)


def snapshot_json(info) -> dict:
    """A snapshot as every listing shows it (log, tag, forget): full id, short id, ISO time."""
    tables = [t for b in info.bases for t in b.tables]
    counts = {k: sum(getattr(t, k) for t in tables) for k in ("records", "new", "changed", "deleted")}
    return {"id": info.full_id, "short_id": info.full_id[:8], "time": iso(info.time), "status": info.status,
            "parent": info.parent, "bases": len(info.bases), "tables": len(tables), **counts,
            "tags": list(info.tags), "note": info.note, "bytes_added": info.bytes_added,
            "missing": info.missing}


# ------------------------------------------------------------------------------------------------
# running a verb under its flags


#: Environment variables whose values a verbose log line must never show.
SECRET_VARS = ("AIRTABLE_TOKEN", "SNAPSTORE_PASSWORD")


@contextmanager
def session(out: Output, *, own_logging: bool = False) -> Iterator[None]:
    """Run a verb under its flags: ``-q`` drops whatever it prints on stdout (so every verb is quiet
    on success, whatever it prints), ``-v`` sends debug log lines to stderr (unless the verb runs its
    own logging, as snapshot does)."""
    handler = None
    logger = logging.getLogger("snapstore")
    old_level = logger.level
    if out.verbose and not own_logging:
        from snapstore.ops.snapshot import RedactFilter

        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler.addFilter(RedactFilter([os.environ.get(v, "") for v in SECRET_VARS]))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        if out.quiet and not out.json:
            with redirect_stdout(io.StringIO()):
                yield
        else:
            yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
