"""``--config FILE`` / ``$SNAPSTORE_CONFIG`` on every verb: the file's settings become the verb's
defaults (click's ``default_map``), below flags and environment variables. The rules of the file
are the library's (snapstore/config.py); this module tells it which command takes which keys."""

from __future__ import annotations

import click

from snapstore import config
from snapstore.commands import password

#: Parameters that are not settings.
_NOT_KEYS = {"help", "config"}


def keys_of(cmd: click.Command) -> dict[str, str]:
    """key → parameter name: the long option names (``api_url`` for ``--api-url``), the names the
    documentation and ``--help`` show; never the Python parameter names behind them (``as_json``).
    Arguments are not settings."""
    out: dict[str, str] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option) or not p.name or p.name in _NOT_KEYS:
            continue
        for opt in p.opts:  # not --no-X of --X/--no-X: `no_x = true` would read as x = true
            if opt.startswith("--"):
                out.setdefault(config.key(opt[2:]), p.name)
    return out


def known_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict[str, str]]:
    """Every command of ``group`` (subcommands of subgroups too) → its keys."""
    out = {}
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.update(known_commands(cmd, (*prefix, name)))
        else:
            out[(*prefix, name)] = keys_of(cmd)
    return out


def _command_path(ctx: click.Context) -> tuple[str, ...]:
    parts = []
    while ctx.parent is not None:
        parts.append(ctx.command.name or "")
        ctx = ctx.parent
    return tuple(reversed(parts)) or (ctx.command.name or "",)


def _load(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if not value:
        return
    ctx.meta["snapstore.config_path"] = value  # serve hands the same file to the runs it starts
    from snapstore.cli import main  # the whole command graph: a key is known if any command takes it

    known = known_commands(main)
    path = _command_path(ctx)
    if path not in known:  # a verb run on its own (tests) that the group does not hold
        known[path] = keys_of(ctx.command)
    doc = config.read(value)
    settings = config.settings_for(doc, value, path, {c: set(k) for c, k in known.items()})
    _group_settings(doc)
    names = known[path]
    params = {p.name: p for p in ctx.command.params}
    defaults = {}
    for k, v in settings.items():
        name = names[k]
        if params[name].multiple and not isinstance(v, list):
            v = [v]
        defaults[name] = v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _group_settings(doc: dict) -> None:
    """``password_file`` at the top level: the group's ``--password-file``, below the flag and
    $SNAPSTORE_PASSWORD_FILE (and $SNAPSTORE_PASSWORD, which resolve() tries first)."""


    path = doc.get("password_file", doc.get("password-file"))
    if isinstance(path, str) and password.PASSWORD_FILE is None:
        password.use(config.checked_path(path, "password_file", "the config file"))


def config_option() -> click.Option:
    """The ``--config`` option (eager: read before the options whose defaults it sets)."""
    return click.Option(
        ["--config"], type=click.Path(dir_okay=False), envvar="SNAPSTORE_CONFIG", is_eager=True,
        expose_value=False, callback=_load,
        help="TOML file of settings: top-level keys for every command, a [COMMAND] table for one "
             "(flags and environment win). [env: SNAPSTORE_CONFIG]")
