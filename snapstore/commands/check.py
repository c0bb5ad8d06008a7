"""``snapstore check``: the token and its access, a verdict per base (snapstore/ops/check.py)."""

from __future__ import annotations

import click

from snapstore.commands.base import command
from snapstore.commands.options import make_source, source_options
from snapstore.commands.output import Output
from snapstore.errors import Incomplete


@command(imports=("snapstore.ops.check",))
@source_options
@click.option("--base", "-b", multiple=True, help="Only check these bases (ids or names).")
@click.option("--comments", is_flag=True, help="Also check the comments scope (data.recordComments:read).")
def check(base, comments, out: Output, **kw) -> None:
    """Verify the token and its access: a verdict per base (schema and records readable).

    Exit codes: 0 every base readable, 1 the token or API failed, 3 some bases not readable.
    """
    from snapstore.ops.check import check_access

    source, _token = make_source(kw)
    with source:
        rep = check_access(source, list(base), comments=comments)
    if out.json:
        out.emit(rep.to_dict())
    else:
        user = rep.user
        out.echo(f"token ok: user {user.get('id')}" + (f" <{user['email']}>" if user.get("email") else "")
                 + (f", scopes {' '.join(user['scopes'])}" if user.get("scopes") else "")
                 + f"; {rep.visible} base(s) visible at {rep.api_url}")
        for v in rep.verdicts:
            mark = "ok  " if v["ok"] else "FAIL"
            name = f"{v['name']} ({v['base_id']})" if v["name"] else v["base_id"]
            out.echo(f"  {mark} {name}: {v['verdict'].removeprefix('ok: ')}")
        if not rep.verdicts:
            out.echo("  (the token sees no base: grant it bases in its access settings)")
    if not rep.ok:
        bad = sum(not v["ok"] for v in rep.verdicts)
        out.fail(Incomplete(f"{bad} of {len(rep.verdicts)} base(s) not readable" if rep.verdicts else
                            "the token sees no base"))
