"""``snapstore forget``: forget snapshots by policy (restic's rules, per set of bases) or by id."""

from __future__ import annotations

import click

from snapstore import units
from snapstore.commands import params
from snapstore.commands.base import command
from snapstore.commands.options import dry_run_option, open_store, store_option
from snapstore.commands.output import Output, iso
from snapstore.commands.render import prune_lines
from snapstore.errors import SnapstoreError


@command()
@store_option
@click.argument("snapshots", nargs=-1)
@click.option("--keep-last", "-l", metavar="N", callback=params.count, help="Keep the N newest snapshots ('unlimited' for all).")
@click.option("--keep-hourly", "-H", metavar="N", callback=params.count, help="Keep the newest snapshot of each of the last N hours that have one.")
@click.option("--keep-daily", "-d", metavar="N", callback=params.count, help="... of each of the last N days that have one.")
@click.option("--keep-weekly", "-w", metavar="N", callback=params.count, help="... of each of the last N ISO weeks that have one.")
@click.option("--keep-monthly", "-m", metavar="N", callback=params.count, help="... of each of the last N months that have one.")
@click.option("--keep-yearly", "-y", metavar="N", callback=params.count, help="... of each of the last N years that have one.")
@click.option("--keep-within", metavar="DURATION", callback=params.duration, help="Keep every snapshot newer than the newest minus DURATION (1y6m, 2d3h).")
@click.option("--keep-within-hourly", metavar="DURATION", callback=params.duration, help="Keep hourly snapshots within DURATION.")
@click.option("--keep-within-daily", metavar="DURATION", callback=params.duration, help="Keep daily snapshots within DURATION.")
@click.option("--keep-within-weekly", metavar="DURATION", callback=params.duration, help="Keep weekly snapshots within DURATION.")
@click.option("--keep-within-monthly", metavar="DURATION", callback=params.duration, help="Keep monthly snapshots within DURATION.")
@click.option("--keep-within-yearly", metavar="DURATION", callback=params.duration, help="Keep yearly snapshots within DURATION.")
@click.option("--keep-tag", multiple=True, metavar="TAG[,TAG]", help="Keep snapshots carrying all these tags (repeatable).")
@dry_run_option("Show what would be kept (and why) and forgotten; change nothing.")
@click.option("--prune", "do_prune", is_flag=True, help="Prune afterwards.")
@click.option("--max-unused", default="5%", show_default=True, callback=params.size_or_percent,
              help="With --prune: unused space to tolerate.")
def forget(store, snapshots, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
           keep_within, keep_within_hourly, keep_within_daily, keep_within_weekly, keep_within_monthly,
           keep_within_yearly, keep_tag, dry_run, do_prune, max_unused, out: Output) -> None:
    """Forget snapshots by policy (restic's rules, per set of bases) or by id. Data goes with prune."""
    from snapstore.ops.prune import prune
    from snapstore.ops.retention import Policy
    from snapstore.ops.retention import forget as do_forget

    within_p = {p: d for p, d in (("hourly", keep_within_hourly), ("daily", keep_within_daily),
                                  ("weekly", keep_within_weekly), ("monthly", keep_within_monthly),
                                  ("yearly", keep_within_yearly)) if d}
    policy = Policy(
        last=keep_last, hourly=keep_hourly, daily=keep_daily, weekly=keep_weekly,
        monthly=keep_monthly, yearly=keep_yearly, within=keep_within,
        within_periods=within_p, tags=[[t for t in spec.split(",") if t] for spec in keep_tag],
    )
    if policy.empty() and not snapshots:
        raise click.UsageError("refusing an empty policy: give at least one --keep-* option (or snapshot ids)")
    s = open_store(store)
    try:
        res = do_forget(s, policy if not policy.empty() else None, ids=snapshots, dry_run=dry_run)
        pres = prune(s, max_unused=max_unused, dry_run=dry_run) if do_prune else None
    except ValueError as e:
        raise SnapstoreError(str(e)) from e
    if out.json:
        doc = _forget_json(res)
        if pres is not None:
            doc["prune"] = pres.to_dict()
        out.emit(doc)
        return
    for group, decisions in res.groups.items():
        out.echo(f"bases {', '.join(group) or '-'}: keep {sum(d.keep for d in decisions)}, "
                   f"forget {sum(not d.keep for d in decisions)}")
        for d in decisions:
            t = d.snap.time.isoformat(timespec="seconds").replace("+00:00", "Z")
            if d.keep:
                out.echo(f"  keep    {d.snap.id[:8]}  {t}  {', '.join(d.reasons)}")
            else:
                out.echo(f"  forget  {d.snap.id[:8]}  {t}")
    if dry_run:
        out.echo(f"would forget {units.count(len(res.removed), 'snapshot')}")
    else:
        hint = "; run `snapstore prune` to free the space" if pres is None and res.removed else ""
        out.echo(f"forgot {units.count(len(res.removed), 'snapshot')}{hint}")
    if pres is not None:
        for line in prune_lines(pres):
            out.echo(line)


def _forget_json(res) -> dict:
    """The decisions, with full and short ids (the library's own document shortens them)."""
    def snap(d) -> dict:
        return {"id": d.snap.id, "short_id": d.snap.id[:8], "time": iso(d.snap.time)}
    return {"policy": res.policy, "dry_run": res.dry_run,
            "groups": [{"bases": list(g), "keep": [{**snap(d), "reasons": d.reasons} for d in ds if d.keep],
                        "remove": [snap(d) for d in ds if not d.keep]} for g, ds in res.groups.items()],
            "removed": list(res.removed)}
