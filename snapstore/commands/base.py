"""Where every error becomes one line and an exit code: the click classes every verb uses.

A command (or the group, for ``snapstore VERB``) runs through :func:`invoke_safely`, which turns
whatever it raises into exactly one line on stderr (with ``--json`` also a JSON error object on stdout)
and the exit code of :mod:`snapstore.errors`. A bug (an exception nobody meant to show) gets one line
saying so and where its traceback went; ``SNAPSTORE_DEBUG=1`` prints the traceback too.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click

from snapstore import interrupts
from snapstore.commands import password
from snapstore.commands.output import SECRET_VARS, output_of, session, standard_options
from snapstore.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Reported,
    SnapstoreError,
    find_os_error,
    os_error_message,
)


def _wants_json(args: list[str], contexts: list[click.Context]) -> bool:
    """Was JSON asked for: ``--json``, or ``--format json`` where it means the output (diff,
    history; never export's list of file formats). The parsed flags say so when parsing got that
    far, else the command line."""
    if any(output_of(c).json for c in contexts):
        return True
    return "--json" in args[:args.index("--")] if "--" in args else "--json" in args


#: The flags a user may give before or after the verb (restic's global flags): those the group
#: takes (moved before the verb) and those every verb takes (moved after it). Value: takes a value.
GROUP_FLAGS = {"--password-file": True}
VERB_FLAGS = {"--store": True, "-s": True, "--config": True, "--color": True, "--json": False,
              "-q": False, "--quiet": False, "-v": False, "--verbose": False}


def hoist_globals(args: list[str]) -> list[str]:
    """``snapstore --store X log`` and ``snapstore log --password-file F`` as restic takes them: the
    verb's flags given before it move after the command line, the group's given after the verb
    move before it. Nothing after ``--`` moves."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    head, tail, verb_at, i = [], [], None, 0
    before: list[str] = []
    while i < end:
        a = args[i]
        name = a.split("=", 1)[0]
        takes = GROUP_FLAGS.get(name, VERB_FLAGS.get(name))
        n = 2 if takes and "=" not in a and i + 1 < end else 1
        if takes is None or (verb_at is None and name in GROUP_FLAGS) or (verb_at is not None and name in VERB_FLAGS):
            if verb_at is None and not a.startswith("-"):
                verb_at = len(head)
            n = n if takes is not None else 1
            head.extend(args[i:i + n])
            i += n
            continue
        (tail if verb_at is None else before).extend(args[i:i + n])
        i += n
    if verb_at is None:  # no verb: leave the line as it was (click says what is missing)
        return args
    return head[:verb_at] + before + head[verb_at:] + tail + args[end:]


def _redact(text: str) -> str:
    for v in [os.environ.get(var) for var in SECRET_VARS] + password.secrets():
        if v and len(v) >= 4:
            text = text.replace(v, "[redacted]")
    return text


def crash_log_dir() -> Path:
    """Where tracebacks of bugs go: the user's state folder, never the store or an export."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "snapstore" / "crashes"


def _write_crash(exc: BaseException, argv: list[str]) -> str | None:
    text = _redact("".join(traceback.format_exception(exc)))
    try:
        d = crash_log_dir()
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = d / f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{os.getpid()}.log"
        # the command line may hold a --token: the file gets the verb only
        path.write_text(f"snapstore {argv[0] if argv else ''}\n{text}", encoding="utf-8")
        return str(path)
    except OSError:
        return None


def describe(exc: BaseException, argv: list[str]) -> tuple[str, int, str]:
    """(one line, exit code, error type) for anything a command raised."""
    if isinstance(exc, Reported):
        return "", exc.exit_code, ""
    if isinstance(exc, click.exceptions.Exit):  # click's own (--help, --version, ctx.exit)
        return "", exc.exit_code, ""
    if interrupts.requested() and not isinstance(exc, SnapstoreError | click.ClickException):
        # whatever a stop request broke on its way out (DuckDB turns the KeyboardInterrupt raised in
        # one of its queries into "RuntimeError: Query interrupted") is the interruption itself
        return "interrupted: nothing was left half-written", EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, click.UsageError):
        cmd = exc.ctx.command_path if exc.ctx is not None else "snapstore"
        return f"Error: {exc.format_message()} (see '{cmd} --help')", EXIT_USAGE, "usage"
    if isinstance(exc, click.ClickException):
        # a verb that wrapped a library error keeps the library error's exit code
        cause = exc.__cause__
        code = cause.exit_code if isinstance(cause, SnapstoreError) else exc.exit_code
        return f"Error: {exc.format_message()}", code, type(cause or exc).__name__
    if isinstance(exc, click.Abort | KeyboardInterrupt) or isinstance(exc, SnapstoreError) and \
            exc.exit_code == EXIT_INTERRUPTED:
        msg = str(exc) if isinstance(exc, SnapstoreError) and str(exc) else "nothing was left half-written"
        return f"interrupted: {msg}", EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, SnapstoreError):
        os_err = find_os_error(exc)
        msg = str(exc) or type(exc).__name__
        if os_err is not None and _is_plain_os(os_err) and str(os_err) in msg:
            msg = os_error_message(os_err)
        return f"Error: {_one_line(msg)}", exc.exit_code, type(exc).__name__
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"Error: {os_error_message(exc)}", EXIT_ERROR, "OSError"
    full = _disk_full(exc)
    if full is not None:  # DuckDB's and SQLite's own words for ENOSPC: expected, not a bug
        return f"Error: no space left on device ({_one_line(full)}); free some space and run again", EXIT_ERROR, "OSError"
    if isinstance(exc, MemoryError):
        return "Error: out of memory; try fewer --workers, or a machine with more memory", EXIT_ERROR, "MemoryError"
    where = _write_crash(exc, argv)
    tail = f"; the traceback is in {where}" if where else ""
    return (f"Error: unexpected {type(exc).__name__} (a bug in snapstore): {_one_line(_redact(str(exc)))}{tail}; "
            "SNAPSTORE_DEBUG=1 prints it", EXIT_ERROR, "bug")


#: How DuckDB ("IO Error: Could not write file ...: No space left on device") and SQLite
#: ("database or disk is full") say that a disk is full: they raise their own classes, not OSError.
_FULL_DISK_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded")


def _disk_full(exc: BaseException) -> str | None:
    """The message of the exception in ``exc``'s chain that says the disk is full, if one does."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if any(w in str(cur).lower() for w in _FULL_DISK_WORDS):
            return _redact(str(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def _is_plain_os(e: OSError) -> bool:
    import errno

    return e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EDQUOT)


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def _corrupt_catalog(exc: BaseException):
    if "snapstore.store.catalog" not in sys.modules:  # (a usage error: the catalog was never loaded)
        return None
    from snapstore.store.catalog import CatalogCorrupt

    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, CatalogCorrupt) and cur.path is not None:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _invoke(cmd: click.Command, argv: list[str], prog_name: str | None, seen: list[click.Context], **extra):
    with password.installed(), cmd.make_context(prog_name or "snapstore", list(argv), **extra) as ctx:
        seen.append(ctx)
        return cmd.invoke(ctx)


def invoke_safely(cmd: click.Command, args: list[str] | None, prog_name: str | None, **extra) -> int:
    """Run ``cmd`` as click would, and return its exit code instead of raising anything.

    A damaged catalog found in the middle of a command (DuckDB checks a block only when it reads
    it) is what the README promises to repair: the file is moved aside, and the command runs once
    more, opening the store rebuilds the catalog from the objects (one line says so)."""
    argv = list(sys.argv[1:] if args is None else args)
    interrupts.install()
    interrupts.reset()
    # a log file on a full disk must not print a traceback per record: the error that stops the
    # command says what happened, once
    logging.raiseExceptions = False
    seen: list[click.Context] = []
    try:
        interrupts.check_settings()
        try:
            rv = _invoke(cmd, argv, prog_name, seen, **extra)
        except Exception as e:
            bad = _corrupt_catalog(e)
            if bad is None:
                raise
            from snapstore.store.catalog import Catalog

            moved = Catalog(bad.path).quarantine()
            click.echo(f"warning: the catalog {bad.path} was damaged; moved it to {moved.name} and rebuilding it "
                       "from the store's objects", err=True)
            rv = _invoke(cmd, argv, prog_name, seen, **extra)
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except SystemExit as e:  # a verb's own exit code
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    except BaseException as e:  # noqa: BLE001 - this is the one place that turns errors into lines
        interrupts.finished()  # a second signal must not interrupt the report of the first error
        if _reader_gone(e):
            return EXIT_PIPE
        line, code, kind = describe(e, argv)
        if os.environ.get("SNAPSTORE_DEBUG") and kind == "bug":
            traceback.print_exception(e, file=sys.stderr)
        if line:
            if _wants_json(argv, seen):
                click.echo(json.dumps({"error": {"message": line.removeprefix("Error: "), "exit_code": code,
                                                 "type": kind}}))
            click.echo(line, err=True)
        return code


#: The exit code when whoever read stdout stopped reading (``snapstore find x | head -1``): what a
#: process killed by SIGPIPE gives (128 + 13), as git's and restic's do, without a word on stderr.
EXIT_PIPE = 141


def _reader_gone(exc: BaseException) -> bool:
    """stdout's reader went away: say nothing more, and let nothing flush into the closed pipe."""
    import errno

    os_err = find_os_error(exc)
    if os_err is None or os_err.errno != errno.EPIPE:
        return False
    quiet_stdout()
    return True


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # (not a real file: a test runner's buffer)
        pass


def preload(modules: tuple[str, ...] = ()) -> None:
    """Import the store (DuckDB, Arrow, zstd, cryptography) and ``modules`` with the stop signals
    held, then make the CLI's password prompt the library's source: a verb is about to run.

    The verbs import the library inside their functions, so that ``snapstore --help``, ``snapstore
    VERB --help`` and usage errors load none of it (tests/test_cli_startup.py): ``snapstore --help``
    took 0.33 s against 2.17 s, best of 5 on a loaded machine. A verb declares the modules it
    imports that bring C extensions of their own (``command(imports=...)``: export's pyarrow
    file systems and sqlite3, the Airtable client's pydantic core).

    The heavy imports happen here instead, under :func:`interrupts.deferred`: a KeyboardInterrupt
    raised inside a C extension's initialisation surfaced as "ImportError: initialization failed",
    and once as a segfault (snapstore/entry.py). A stop that arrived meanwhile is delivered at the
    end: exit 130, nothing started."""
    with interrupts.deferred():
        importlib.import_module("snapstore.store")
        for name in modules:
            importlib.import_module(name)
    password.activate()


class SnapstoreCommand(click.Command):
    """A verb: run standalone (``CliRunner().invoke(verb, ...)``) it handles errors like the group.
    Before its function runs, :func:`preload` imports what it needs (``imports``: besides the store)."""

    imports: tuple[str, ...] = ()

    def invoke(self, ctx: click.Context):  # noqa: D102
        preload(self.imports)
        from snapstore.commands import runhook  # the API budget, the ledger, notifications

        if not runhook.applies(self, self.imports):
            return super().invoke(ctx)
        return runhook.around(self, ctx, lambda: super(SnapstoreCommand, self).invoke(ctx))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        extra.pop("windows_expand_args", None)
        sys.exit(invoke_safely(self, args, prog_name, **extra))


class SnapstoreGroup(click.Group):
    """The ``snapstore`` group (and ``feed``): every verb's errors pass through :func:`invoke_safely`
    once, and a subcommand declared with ``@group.command()`` gets the shared flags like any verb."""

    command_class = SnapstoreCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:  # noqa: D102
        if ctx.parent is None:  # the snapstore group itself: global flags anywhere
            args = hoist_globals(args)
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # noqa: D102
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        extra.pop("windows_expand_args", None)
        sys.exit(invoke_safely(self, args, prog_name, **extra))

    def command(self, *args, **kwargs):  # noqa: D102
        if args and callable(args[0]):  # @group.command without parentheses
            return self.command(*args[1:], **kwargs)(args[0])

        def decorator(f):
            cmd = command(*args, **kwargs)(f)
            self.add_command(cmd)
            return cmd
        return decorator


#: Values a verb may declare itself (older verbs, feed) that the shared Output picks up.
_OWN_FLAGS = {"as_json": "json", "quiet": "quiet", "verbose": "verbose"}


def _conventions(f: Callable, own_logging: bool) -> Callable:
    takes_out = "out" in inspect.signature(f).parameters

    @functools.wraps(f)
    def verb(*args, **kwargs):
        out = output_of(click.get_current_context())
        for name, attr in _OWN_FLAGS.items():
            if kwargs.get(name):
                setattr(out, attr, True)
        if takes_out:
            kwargs["out"] = out
        with session(out, own_logging=own_logging):
            return f(*args, **kwargs)
    return verb


#: Set on a verb's function by a decorator (snapstore.commands.options.source_options): modules
#: the verb imports besides the store, loaded by :func:`preload`.
IMPORTS_ATTR = "__snapstore_imports__"


def command(name: str | None = None, *, own_logging: bool = False, imports: tuple[str, ...] = (), **kwargs):
    """``click.command`` with :class:`SnapstoreCommand` and the conventions every verb shares: every
    verb is declared with this. It adds ``--json``, ``-q/--quiet``, ``-v/--verbose`` (unless the verb
    declares them) and ``--config`` (snapstore/commands/config.py); a verb that takes an ``out``
    argument receives its :class:`~snapstore.commands.output.Output`. ``own_logging``: the verb sets
    up its own log handlers (``-v`` is its business). ``imports``: heavy modules the verb needs
    besides the store, imported by :func:`preload` before it runs."""
    from snapstore.commands.config import config_option

    kwargs.setdefault("cls", SnapstoreCommand)

    def decorator(f: Callable) -> click.Command:
        extra = tuple(imports) + tuple(getattr(f, IMPORTS_ATTR, ()))
        cmd = click.command(name, **kwargs)(_conventions(f, own_logging))
        if isinstance(cmd, SnapstoreCommand):
            cmd.imports = extra
        have = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for opt in standard_options():
            if not have & set(opt.opts):
                cmd.params.append(opt)
        from snapstore.commands.runhook import options_for

        cmd.params.extend(options_for(cmd.name))  # --notify, --ping-url, --api-budget ... (writing verbs)
        cmd.params.append(config_option())
        return cmd
    return decorator


def group(name: str | None = None, **kwargs):
    """``click.group`` with :class:`SnapstoreGroup`, whose subcommands follow :func:`command`."""
    kwargs.setdefault("cls", SnapstoreGroup)
    return click.group(name, **kwargs)


@contextmanager
def stoppable(cancel: threading.Event | None = None) -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the command the same way (a service manager's stop, a job's timeout):
    the main thread raises KeyboardInterrupt once, and ``cancel`` tells worker threads
    (snapstore/interrupts.py has the rules)."""
    interrupts.install()
    if cancel is None:
        yield
        return
    with interrupts.cancel_on_stop(cancel):
        try:
            yield
        except KeyboardInterrupt:
            cancel.set()
            raise


def run() -> None:
    """The console script. A failed or interrupted run ends with ``os._exit`` after flushing: an
    interpreter shutting down joins a worker pool's threads and tears down C++ threads (DuckDB,
    Arrow) that a signal left running, which is where stopped exports hung or aborted."""
    from snapstore.cli import main

    code = invoke_safely(main, None, "snapstore")
    interrupts.finished()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the last lines, buffered, met a reader that had gone
        quiet_stdout()
        code = EXIT_PIPE
    if code == 0:
        sys.exit(0)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        import logging

        logging.shutdown()
    finally:
        os._exit(code)
