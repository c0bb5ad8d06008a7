"""Retention and integrity verbs: forget, prune, verify, stats, tag."""

from __future__ import annotations

import json

import click

from snapstore import units
from snapstore.commands.base import command
from snapstore.commands.common import open_store, store_option
from snapstore.errors import UsageError
from snapstore.store import LockError, StoreError
from snapstore.store.keys import PasswordNeeded

#: A --keep-* count above this is a typo, not a policy (a million hourly snapshots is 114 years).
MAX_KEEP = 1_000_000


def _count(_ctx, _param, value: str | None) -> int:
    """--keep-* N: a count from 0 to MAX_KEEP, or 'unlimited' (stored as -1)."""
    if value is None:
        return 0
    if value.strip().lower() == "unlimited":
        return -1
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a count: use a whole number from 0 to {MAX_KEEP:,} "
                                 "or 'unlimited'") from None
    if not 0 <= n <= MAX_KEEP:
        raise click.BadParameter(f"{n} is out of range: use a whole number from 0 to {MAX_KEEP:,} or 'unlimited'")
    return n


def _duration(_ctx, _param, value: str | None):
    from snapstore.retention import Duration

    if not value:
        return None
    try:
        return Duration.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _size_or_percent(_ctx, _param, value: str) -> str:
    from snapstore.prune import parse_size_or_percent

    try:
        parse_size_or_percent(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


def _subset(_ctx, _param, value: str | None) -> str | None:
    from snapstore.verify import parse_subset

    try:
        parse_subset(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=1, default=str))


@command()
@store_option
@click.argument("snapshots", nargs=-1)
@click.option("--keep-last", "-l", metavar="N", callback=_count, help="Keep the N newest snapshots ('unlimited' for all).")
@click.option("--keep-hourly", "-H", metavar="N", callback=_count, help="Keep the newest snapshot of each of the last N hours that have one.")
@click.option("--keep-daily", "-d", metavar="N", callback=_count, help="... of each of the last N days that have one.")
@click.option("--keep-weekly", "-w", metavar="N", callback=_count, help="... of each of the last N ISO weeks that have one.")
@click.option("--keep-monthly", "-m", metavar="N", callback=_count, help="... of each of the last N months that have one.")
@click.option("--keep-yearly", "-y", metavar="N", callback=_count, help="... of each of the last N years that have one.")
@click.option("--keep-within", metavar="DURATION", callback=_duration, help="Keep every snapshot newer than the newest minus DURATION (1y6m, 2d3h).")
@click.option("--keep-within-hourly", metavar="DURATION", callback=_duration, help="Keep hourly snapshots within DURATION.")
@click.option("--keep-within-daily", metavar="DURATION", callback=_duration, help="Keep daily snapshots within DURATION.")
@click.option("--keep-within-weekly", metavar="DURATION", callback=_duration, help="Keep weekly snapshots within DURATION.")
@click.option("--keep-within-monthly", metavar="DURATION", callback=_duration, help="Keep monthly snapshots within DURATION.")
@click.option("--keep-within-yearly", metavar="DURATION", callback=_duration, help="Keep yearly snapshots within DURATION.")
@click.option("--keep-tag", multiple=True, metavar="TAG[,TAG]", help="Keep snapshots carrying all these tags (repeatable).")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be kept (and why) and forgotten; change nothing.")
@click.option("--prune", "do_prune", is_flag=True, help="Prune afterwards.")
@click.option("--max-unused", default="5%", show_default=True, callback=_size_or_percent,
              help="With --prune: unused space to tolerate.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def forget(store, snapshots, keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
           keep_within, keep_within_hourly, keep_within_daily, keep_within_weekly, keep_within_monthly,
           keep_within_yearly, keep_tag, dry_run, do_prune, max_unused, as_json) -> None:
    """Forget snapshots by policy (restic's rules, per set of bases) or by id. Data goes with prune."""
    from snapstore.prune import prune
    from snapstore.retention import Policy
    from snapstore.retention import forget as do_forget

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
    except (StoreError, LockError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        out = res.to_dict()
        if pres is not None:
            out["prune"] = pres.to_dict()
        _echo_json(out)
        return
    for group, decisions in res.groups.items():
        click.echo(f"bases {', '.join(group) or '-'}: keep {sum(d.keep for d in decisions)}, "
                   f"forget {sum(not d.keep for d in decisions)}")
        for d in decisions:
            t = d.snap.time.isoformat(timespec="seconds").replace("+00:00", "Z")
            if d.keep:
                click.echo(f"  keep    {d.snap.id[:8]}  {t}  {', '.join(d.reasons)}")
            else:
                click.echo(f"  forget  {d.snap.id[:8]}  {t}")
    if dry_run:
        click.echo(f"would forget {units.count(len(res.removed), 'snapshot')}")
    else:
        hint = "; run `snapstore prune` to free the space" if pres is None and res.removed else ""
        click.echo(f"forgot {units.count(len(res.removed), 'snapshot')}{hint}")
    if pres is not None:
        _echo_prune(pres)


def _echo_prune(r) -> None:
    verb = "would" if r.dry_run else ""
    click.echo(
        f"prune{' (dry run)' if r.dry_run else ''}: {units.count(r.snapshots, 'snapshot')} kept; packs: {r.packs_total} "
        f"({len(r.packs_dead)} unused, {len(r.packs_repack)} to repack, {len(r.packs_orphan)} left over"
        + (f", {len(r.packs_new)} written" if not r.dry_run else "") + f"); blobs live {r.blobs_live}, dead "
        f"{r.blobs_dead}; objects dead {len(r.objects_dead)}; attachments dead {r.attachments_dead}")
    click.echo(f"  store {units.size(r.bytes_before)} -> {units.size(r.bytes_after)} ({verb + ' ' if verb else ''}free "
               f"{units.size(r.bytes_freed)}); unused space left {units.size(r.bytes_unused_after)}")


@command("prune")
@store_option
@click.option("--max-unused", default="5%", show_default=True, callback=_size_or_percent,
              help="Unused space to tolerate in partly used packs: a percentage, a size (100M) or 'unlimited'.")
@click.option("--repack-threshold", type=click.FloatRange(0, 1), default=None,
              help="Also repack every pack whose own unused share is at least this (0..1).")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True)
def prune_cmd(store, max_unused, repack_threshold, dry_run, as_json) -> None:
    """Remove data no snapshot uses; repack packs that are mostly unused. Safe to interrupt."""
    from snapstore.prune import prune

    s = open_store(store)
    try:
        r = prune(s, max_unused=max_unused, repack_threshold=repack_threshold, dry_run=dry_run)
    except (StoreError, LockError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        _echo_json(r.to_dict())
    else:
        _echo_prune(r)


@command()
@store_option
@click.option("--read-data", is_flag=True, help="Also read every pack and object and re-hash every blob.")
@click.option("--read-data-subset", metavar="X%|n/t", callback=_subset, help="Read a subset of the packs (10% at random, or 1/5).")
@click.option("--json", "as_json", is_flag=True)
def verify(store, read_data, read_data_subset, as_json) -> None:
    """Check the store is intact; name the snapshots, tables and records any damage reaches.
    Exit status 1 if anything is damaged."""
    from snapstore.verify import format_report
    from snapstore.verify import verify as do_verify
    from snapstore.verify_sealed import verify_sealed

    if read_data and read_data_subset:
        raise click.UsageError("--read-data reads every pack and --read-data-subset only some: give one of them")
    try:
        s = open_store(store)
    except PasswordNeeded:  # an encrypted store, no password: what the stored bytes prove alone
        s = None
    try:
        rep = do_verify(s, read_data=read_data, subset=read_data_subset) if s else verify_sealed(store)
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        _echo_json(rep.to_dict())
    else:
        click.echo(format_report(rep))
    if not rep.ok:
        raise click.exceptions.Exit(1)


@command()
@store_option
@click.option("--last", type=click.IntRange(min=1), default=20, show_default=True, help="Snapshots per base to list (text output).")
@click.option("--json", "as_json", is_flag=True)
def stats(store, last, as_json) -> None:
    """Store size, deduplication ratio, and growth of each base per snapshot."""
    from snapstore.stats import format_stats
    from snapstore.stats import stats as do_stats

    s = open_store(store)
    try:
        st = do_stats(s)
    except StoreError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        _echo_json(st)
    else:
        click.echo(format_stats(st, last))


def _names_snapshot(store, name: str) -> bool:
    try:
        store.resolve(name)
    except StoreError:
        return False
    return True


#: What a bare ``--remove`` (today's flag: "the TAGS given are to be removed") parses to.
_BARE = "\0bare --remove"


@command()
@store_option
@click.argument("args", nargs=-1, required=True, metavar="SNAPSHOT [TAG...] | SNAPSHOT...")
@click.option("--add", "add", multiple=True, metavar="TAG", help="Add TAG to each SNAPSHOT (repeatable).")
@click.option("--remove", "remove", multiple=True, is_flag=False, flag_value=_BARE, metavar="TAG",
              help="Remove TAG from each SNAPSHOT (repeatable). Bare, after `SNAPSHOT TAG...`: remove those TAGs.")
@click.option("--set", "set_to", multiple=True, metavar="TAG",
              help="Replace the tags of each SNAPSHOT with these (repeatable; a single --set '' clears them).")
@click.option("--json", "as_json", is_flag=True, help="Print each snapshot's tags as JSON.")
def tag(store, args, add, remove, set_to, as_json) -> None:
    """Change snapshots' tags; a tag pins a snapshot under `forget --keep-tag TAG`.

    \b
    snapstore tag --add pinned --remove nightly SNAPSHOT [SNAPSHOT...]   (restic's shape)
    snapstore tag --set monthly SNAPSHOT...                              replace the tags
    snapstore tag SNAPSHOT TAG...  [--remove]                            add (or remove) TAGs

    Tags cannot be blank or hold a comma (`forget --keep-tag a,b` means a and b)."""
    from snapstore.retention import retag

    bare = _BARE in remove
    remove = [t for t in remove if t != _BARE]
    if add or remove or set_to:
        if bare:
            raise click.UsageError("a bare --remove goes with `tag SNAPSHOT TAG...`, not with --add/--remove TAG/--set")
        names, kw = list(args), {"add": add, "remove": remove,
                                 "set_to": ([] if set_to == ("",) else list(set_to)) if set_to else None}
    else:  # today's form: SNAPSHOT TAG... [--remove]
        if len(args) < 2:
            raise click.UsageError("give TAGs after SNAPSHOT, or --add/--remove/--set TAG before the snapshots")
        names, tags = [args[0]], list(args[1:])
        kw = {"add": () if bare else tags, "remove": tags if bare else ()}
    s = open_store(store)
    if len(remove) == 1 and not add and not set_to and _names_snapshot(s, remove[0]) \
            and not any(_names_snapshot(s, a) for a in args):
        names, kw = [remove[0]], {"remove": list(args)}  # today's `tag --remove SNAPSHOT TAG...`
    try:
        now = retag(s, names, **kw)
    except UsageError as e:
        raise click.UsageError(str(e)) from e
    except (StoreError, LockError) as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps([{"id": fid, "short_id": fid[:8], "tags": tags} for fid, tags in now.items()], indent=2))
        return
    for fid, tags in now.items():
        click.echo(f"{fid[:8]}: tags {', '.join(tags) or '(none)'}")


commands = [forget, prune_cmd, verify, stats, tag]
