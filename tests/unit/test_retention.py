"""forget keeps exactly what restic's rules keep; tags pin; forgetting keeps the store consistent."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from retgen import Clock, contents, history_store, take
from storegen import BASE, TABLE, make_records

from snapstore.commands.forget import forget as forget_cmd
from snapstore.commands.tag import tag as tag_cmd
from snapstore.ops.retention import Candidate, Duration, Policy, apply_policy, forget, plan, tag
from snapstore.ops.verify import verify
from snapstore.store import Store, StoreError
from snapstore.store import inventory as inv

# ---- an independent statement of restic's documented rules ------------------------------------------
# "for the last n <periods> which have one or more snapshots, keep only the most recent one for each
# <period>"; rules are ORed; "if there are not enough snapshots to keep one for each duration related
# --keep-{within-,}* option, the oldest snapshot in the group is kept additionally".


def _period(kind, t):
    return {
        "hour": lambda: t.strftime("%Y-%m-%d %H"),
        "day": lambda: t.strftime("%Y-%m-%d"),
        "week": lambda: "{:04d}-W{:02d}".format(*t.isocalendar()[:2]),
        "month": lambda: t.strftime("%Y-%m"),
        "year": lambda: t.strftime("%Y"),
    }[kind]()


def expected_keep(times: dict[str, datetime], last=0, **counts) -> set[str]:
    keep: set[str] = set()
    newest_first = sorted(times, key=lambda i: times[i], reverse=True)
    if last:
        keep.update(newest_first[:last])
    for kind, n in counts.items():
        if not n:
            continue
        newest_of_period: dict[str, str] = {}
        for i in newest_first:
            newest_of_period.setdefault(_period(kind, times[i]), i)
        periods = sorted(newest_of_period, reverse=True)  # period labels sort chronologically
        keep.update(newest_of_period[p] for p in periods[:n])
        if len(periods) < n:
            keep.add(newest_first[-1])
    if last and len(times) < last:
        keep.add(newest_first[-1])
    return keep


def year_of_hourly(seed=1, start=datetime(2025, 1, 1, 0, 0, tzinfo=UTC)) -> dict[str, datetime]:
    rng = random.Random(seed)
    times = {}
    for h in range(8760):
        t = start + timedelta(hours=h, minutes=rng.randint(0, 59), seconds=rng.randint(0, 59))
        if rng.random() < 0.03:  # a few missed hours: periods without snapshots don't count
            continue
        times[f"{h:064x}"] = t
    return times


def kept_ids(times, policy) -> set[str]:
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], policy)
    return {d.snap.id for d in ds if d.keep}


def test_year_of_hourly_24h_30d_12m_keeps_what_restic_keeps():
    times = year_of_hourly()
    got = kept_ids(times, Policy(hourly=24, daily=30, monthly=12))
    want = expected_keep(times, hour=24, day=30, month=12)
    assert got == want
    assert 24 + 30 + 12 - 2 <= len(got) <= 24 + 30 + 12  # overlaps: today's newest is hourly, daily and monthly


@pytest.mark.parametrize("counts", [
    dict(last=5, week=10, year=3),
    dict(hour=48, day=7, week=8, month=6, year=2),
    dict(day=400),  # more days asked than exist: the oldest is kept too
    dict(month=13, year=5),
    dict(last=9000),
])
def test_other_policies_match_restic(counts):
    times = year_of_hourly(seed=2, start=datetime(2024, 6, 15, 7, 0, tzinfo=UTC))
    names = {"hour": "hourly", "day": "daily", "week": "weekly", "month": "monthly", "year": "yearly", "last": "last"}
    policy = Policy(**{names[k]: v for k, v in counts.items()})
    assert kept_ids(times, policy) == expected_keep(times, **counts)


def test_reasons_and_oldest_rule():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    times = {f"{i:02d}": t0 + timedelta(days=i) for i in range(5)}
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], Policy(daily=10, last=1))
    reasons = {d.snap.id: d.reasons for d in ds}
    assert reasons["04"] == ["last snapshot", "daily snapshot"]
    assert reasons["00"] == ["daily snapshot"]
    times["00b"] = t0 + timedelta(hours=1)  # same month as 00, newer
    times["00a"] = t0 - timedelta(minutes=1)  # 2024-12-31: a month and a year of its own
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], Policy(monthly=5))
    r = {d.snap.id: d.reasons for d in ds if d.keep}
    assert r == {"04": ["monthly snapshot"], "00a": ["monthly snapshot"]}
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], Policy(yearly=5, hourly=0, daily=0))
    r = {d.snap.id: d.reasons for d in ds if d.keep}
    assert r == {"04": ["yearly snapshot"], "00a": ["yearly snapshot"]}
    times.pop("00a")
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], Policy(monthly=5))
    r = {d.snap.id: d.reasons for d in ds if d.keep}
    assert r == {"04": ["monthly snapshot"], "00": ["oldest monthly snapshot"]}


def test_keep_within_is_calendar_arithmetic_from_the_newest():
    assert Duration.parse("1y6m") == Duration(1, 6, 0, 0)
    assert str(Duration.parse("2d3h")) == "2d3h"
    with pytest.raises(ValueError):
        Duration.parse("3w")
    newest = datetime(2025, 3, 31, 12, tzinfo=UTC)
    # Go's AddDate: 2025-03-31 minus one month is "2025-02-31", normalised to 2025-03-03
    assert Duration.parse("1m").before(newest) == datetime(2025, 3, 3, 12, tzinfo=UTC)
    assert Duration.parse("2d3h").before(newest) == datetime(2025, 3, 29, 9, tzinfo=UTC)
    times = {f"{h:03d}": newest - timedelta(hours=h) for h in range(100)}
    ds = apply_policy([Candidate(i, t) for i, t in times.items()], Policy(within=Duration.parse("2d3h")))
    kept = {d.snap.id for d in ds if d.keep}
    assert kept == {f"{h:03d}" for h in range(51)}  # strictly newer than newest - 51h
    assert next(d for d in ds if d.snap.id == "000").reasons == ["within 2d3h"]


def test_keep_tag_and_groups():
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    snaps = [Candidate(f"a{i}", t0 + timedelta(hours=i), ["keep"] if i == 2 else [], ("appA",)) for i in range(5)]
    snaps += [Candidate(f"b{i}", t0 + timedelta(hours=i), [], ("appB",)) for i in range(3)]
    groups = plan(snaps, Policy(last=1, tags=[["keep"]]))
    kept = {d.snap.id: d.reasons for ds in groups.values() for d in ds if d.keep}
    assert kept == {"a4": ["last snapshot"], "a2": ["has tags [keep]"], "b2": ["last snapshot"]}


def test_empty_policy_is_refused(tmp_path_factory, tmp_path):
    with pytest.raises(StoreError, match="empty policy"):
        apply_policy([], Policy())
    store, _ = history_store(tmp_path_factory, tmp_path)
    with pytest.raises(StoreError, match="empty policy"):
        forget(store, Policy())
    r = CliRunner().invoke(forget_cmd, ["--store", str(store.root)])
    assert r.exit_code != 0 and "empty policy" in r.output
    assert len(store.list_snapshots()) == 8


# ---- on a store ---------------------------------------------------------------------------------------


def test_forget_on_a_store_keeps_restics_set_and_the_rest_reads_the_same(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    times = {s.full_id: s.time for s in snaps}
    want = expected_keep(times, last=2) | {snaps[3].full_id}
    before = {s.full_id: contents(store, s) for s in snaps if s.full_id in want}
    tag(store, snaps[3].id, add=["pin"])
    r = CliRunner().invoke(forget_cmd, ["--store", str(store.root), "--keep-last", "2", "--keep-tag", "pin", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "has tags [pin]" in r.output and "would forget 5 snapshots" in r.output
    assert len(store.list_snapshots()) == 8
    r = CliRunner().invoke(forget_cmd, ["--store", str(store.root), "--keep-last", "2", "--keep-tag", "pin", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert len(out["removed"]) == 5
    assert {s.full_id for s in store.list_snapshots()} == want
    assert {k.rsplit("/", 1)[-1] for k, _ in store.backend.list("snapshots")} == want
    for s in store.list_snapshots():
        assert contents(store, s) == before[s.full_id]
    assert verify(store, read_data=True).ok
    # the catalog rebuilt from the objects alone gives the same answers, tags included
    store.rebuild_catalog()
    assert {s.full_id: s.tags for s in store.list_snapshots()}[snaps[3].full_id] == ["pin"]
    for s in store.list_snapshots():
        assert contents(store, s) == before[s.full_id]


def test_snapshot_after_forgetting_the_newest_diffs_against_what_is_kept(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    keep = snaps[4]
    forget(store, ids=[s.id for s in snaps[5:]])
    assert store.resolve("latest").full_id == keep.full_id
    recs = sorted(store.records(keep, BASE, TABLE), key=lambda r: r["id"])
    recs[5] = dict(recs[5], fields=dict(recs[5]["fields"], fldNOTES000000001="after forget"))
    info = take(store, recs, Clock(keep.time + timedelta(days=1)))
    t = info.table(BASE, TABLE)
    assert (t.new, t.changed, t.deleted) == (0, 1, 0)
    assert sorted(store.records(info, BASE, TABLE), key=lambda r: r["id"]) == recs
    store.rebuild_catalog()
    assert sorted(store.records("latest", BASE, TABLE), key=lambda r: r["id"]) == recs
    assert verify(store, read_data=True).ok


def test_interrupted_forget_is_finished_by_the_next_one(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    # killed after recording the forget and deleting the commit object (test_lost_commits.py: the
    # same without the record is damage)
    inv.write_forget_records(store.backend, [snaps[0].full_id])
    store.backend.delete(f"snapshots/{snaps[0].full_id}")
    rep = verify(store)
    assert rep.ok and any("interrupted forget" in w for w in rep.warnings)
    assert len(store.list_snapshots()) == 8  # still listed and readable until finished
    assert contents(store, store.resolve(snaps[0].id))
    forget(store, Policy(last=100))
    assert len(store.list_snapshots()) == 7
    assert verify(store, read_data=True).ok and not verify(store).warnings


def test_tag_command_pins_and_survives_rebuild(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    r = CliRunner().invoke(tag_cmd, ["--store", str(store.root), snaps[1].id, "keep", "audit"])
    assert r.exit_code == 0, r.output
    assert store.resolve(snaps[1].id).tags == ["keep", "audit"]
    r = CliRunner().invoke(tag_cmd, ["--store", str(store.root), "--remove", snaps[1].id, "audit"])
    assert r.exit_code == 0
    store.rebuild_catalog()
    assert store.resolve(snaps[1].id).tags == ["keep"]
    res = forget(store, Policy(last=1, tags=[["keep"]]))
    assert {s.full_id for s in store.list_snapshots()} == {snaps[1].full_id, snaps[-1].full_id}
    assert len(res.removed) == 6
    assert verify(store).ok


def test_forget_on_a_store_with_an_accelerated_clock_keeps_restics_set(tmp_path):
    """24 snapshots over two months (a patched clock; several per hour, some days, some months
    apart): the store's forget keeps exactly the independently computed set, per group of bases."""
    store = Store.init(tmp_path / "s", pack_size=64 * 1024)
    store.backend.fsync = False
    rng = random.Random(5)
    recs = make_records(5)
    t = datetime(2025, 1, 30, 22, 10, tzinfo=UTC)
    clock = Clock(t)
    for i in range(24):
        clock.t += rng.choice([timedelta(minutes=20), timedelta(minutes=50), timedelta(hours=5),
                               timedelta(days=1, hours=3), timedelta(days=9)])
        recs[i % 5] = dict(recs[i % 5], fields=dict(recs[i % 5]["fields"], fldNOTES000000001=f"v{i}"))
        take(store, recs, clock)
    times = {s.full_id: s.time for s in store.list_snapshots()}
    assert len(times) == 24
    want = expected_keep(times, hour=4, day=3, week=2, month=2)
    res = forget(store, Policy(hourly=4, daily=3, weekly=2, monthly=2))
    assert {s.full_id for s in store.list_snapshots()} == want
    assert set(res.removed) == set(times) - want and res.removed
    assert verify(store).ok
