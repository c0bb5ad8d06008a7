"""`snapstore tag`: commas and blank tags refused (store untouched), restic's --add/--remove/--set
on several snapshots, and today's `tag SNAPSHOT TAG... [--remove]` forms still working."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.store import Store
from tests.storegen import make_records, snapshot


@pytest.fixture
def store(tmp_path):
    st = Store.init(tmp_path / "store")
    recs = make_records(3)
    for k in range(3):
        snapshot(st, [dict(r, fields=dict(r["fields"], fldNOTES000000001=f"v{k}")) for r in recs])
    return st


def run(store, *args):
    return CliRunner().invoke(main, ["tag", "--store", str(store.root), *args], catch_exceptions=False)


def tags(store) -> list[list[str]]:
    """Each snapshot's tags, oldest first (read from a freshly opened store)."""
    return [s.tags for s in reversed(Store.open(store.root).list_snapshots())]


def tag_objects(store) -> int:
    return sum(1 for p in (store.root / "tags").rglob("*") if p.is_file()) if (store.root / "tags").exists() else 0


@pytest.mark.parametrize("bad", ["bad tag,comma", "", "   ", "tab\there", " padded"])
def test_bad_tags_are_refused_and_nothing_written(store, bad):
    ids = [s.id for s in store.list_snapshots()]
    for args in ([ids[0], bad], ["--add", bad, ids[0]], ["--set", "ok", "--set", bad, *ids]):
        r = run(store, *args)
        assert r.exit_code == 2, (args, r.output)
        assert "tag" in r.output and r.output.strip().splitlines()[-1].startswith("Error:")
    assert tags(store) == [[], [], []] and tag_objects(store) == 0


def test_comma_message_says_why(store):
    r = run(store, "latest", "a,b")
    assert "cannot hold a comma ('a,b')" in r.output and "--keep-tag" in r.output


def test_add_remove_set_on_several_snapshots(store):
    s = [x.id for x in reversed(store.list_snapshots())]
    r = run(store, "--add", "nightly", "--add", "audit", s[0], s[1], s[2])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [f"{x}: tags nightly, audit" for x in s]
    assert run(store, "--remove", "nightly", "--add", "pinned", s[1], "latest").exit_code == 0
    assert tags(store) == [["nightly", "audit"], ["audit", "pinned"], ["audit", "pinned"]]
    doc = json.loads(run(store, "--set", "monthly", s[0], s[1], "--json").stdout)
    assert [(d["short_id"], d["tags"]) for d in doc] == [(s[0], ["monthly"]), (s[1], ["monthly"])]
    assert len(doc[0]["id"]) == 64
    assert run(store, "--set", "", s[0]).exit_code == 0  # clears
    assert tags(store) == [[], ["monthly"], ["audit", "pinned"]]
    r = run(store, "--set", "x", "--add", "y", s[0])
    assert r.exit_code == 2 and "--set replaces the tags" in r.output
    r = run(store, "--add", "x", s[0], "nosuchsnap")
    assert r.exit_code == 1 and "no snapshot named 'nosuchsnap'" in r.output
    assert tags(store)[0] == []  # the first snapshot was not tagged either


def test_todays_forms_still_work(store):
    s = store.list_snapshots()[1].id
    assert run(store, s, "keep", "audit").output.strip() == f"{s}: tags keep, audit"
    assert run(store, s, "audit", "--remove").output.strip() == f"{s}: tags keep"
    assert run(store, s, "x", "y").exit_code == 0
    assert run(store, "--remove", s, "x").output.strip() == f"{s}: tags keep, y"
    assert tags(store)[1] == ["keep", "y"]
    r = run(store, s)
    assert r.exit_code == 2 and "give TAGs after SNAPSHOT" in r.output


def test_snapshot_tag_option_refuses_commas(tmp_path):
    r = CliRunner().invoke(main, ["snapshot", "--store", str(tmp_path / "s"), "--tag", "a,b"])
    assert r.exit_code == 2 and "cannot hold a comma" in r.output
    assert not (tmp_path / "s").exists()
