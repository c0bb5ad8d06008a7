"""Snapshots grouped by their set of bases (restic groups by paths): after `snapshot --base A`,
the default `diff` reports no base removed; `latest` and `log` narrow with --base."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, generate_workspace
from snapstore.store import Store
from tests.helpers.selection_store import BASES, take

OPS = {"appOPS00000000001": "Operations"}


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """s1 full, s2 full (edits), s3 Operations only (edits), s4 full (more edits)."""
    path = tmp_path_factory.mktemp("groups") / "store"
    store = Store.init(path)
    for edit, bases in ((0, BASES), (1, BASES), (2, OPS), (3, BASES)):
        take(store, bases=bases, edit=edit)
    return str(path), list(reversed(store.list_snapshots())), None


def test_default_diff_pairs_the_same_bases(groups):
    path, snaps, _ = groups
    d = json.loads(run("diff", "--store", path, "--format", "json").stdout)
    assert (d["a"]["short_id"], d["b"]["short_id"]) == (snaps[1].id, snaps[3].id)  # s3 (Operations only) is skipped
    assert d["schema"] == [] and all(t["status"] == "changed" for t in d["tables"])


def test_partial_snapshot_then_diff_reports_no_base_removed(groups):
    path, snaps, _ = groups
    r = run("diff", snaps[1].id, snaps[2].id, "--store", path, "--format", "json")
    d = json.loads(r.stdout)
    assert not [c for c in d["schema"] if c["kind"].startswith("base_")]
    sales = [t for t in d["tables"] if t["base_id"] != "appOPS00000000001"]
    assert sales and all(t["status"] == "not captured" for t in sales)
    assert all(t["removed"] == [] for t in d["tables"])
    text = run("diff", snaps[1].id, snaps[2].id, "--store", path).output
    assert "base removed" not in text and "sales / Projects       not captured in" in text
    assert "Operations / Projects  +0 -0 ~1" in text  # only the one record edited


def test_latest_and_log_narrow_with_base(groups):
    path, snaps, _ = groups
    ids = [x["short_id"] for x in json.loads(run("log", "--store", path, "--json", "--base", "sales").stdout)]
    assert ids == [snaps[3].id, snaps[1].id, snaps[0].id]
    ids = [x["short_id"] for x in json.loads(run("log", "--store", path, "--json", "--base", "operations").stdout)]
    assert ids == [s.id for s in reversed(snaps)]
    r = run("log", "--store", path, "--base", "SALES")
    assert r.exit_code == 2 and "ambiguous" in r.output
    d = json.loads(run("diff", "latest~1", "latest", "--base", "Sales", "--store", path, "--format", "json").stdout)
    assert (d["a"]["short_id"], d["b"]["short_id"]) == (snaps[1].id, snaps[3].id)
    d = json.loads(run("diff", "latest~1", "--base", "operations", "--store", path, "--format", "json").stdout)
    assert (d["a"]["short_id"], d["b"]["short_id"]) == (snaps[2].id, snaps[3].id)
    hits = json.loads(run("find", "edited", "--snapshot", "latest~1", "--base", "Sales", "--store", path,
                          "--json").stdout)  # latest~1 among the snapshots holding Sales: s2, one edit
    # its version spans s2 and s4: s3 did not capture Sales, and s4 holds the same content
    assert [[x["short_id"] for x in h["snapshots"]] for h in hits] == [[snaps[1].id, snaps[3].id]]
    r = run("diff", "latest~3", "latest", "--base", "Sales", "--store", path)
    assert r.exit_code == 1 and "only 3 snapshot(s) holding Sales" in r.output


def test_snapshot_base_then_diff_against_the_emulator(tmp_path):
    """The user's story: a full snapshot, then `snapshot --base A`, then `diff`: nothing is
    reported removed; the other base is "not captured"."""
    ws = generate_workspace(seed=4, bases=2, tables_per_base=1, records_per_table=20, attachment_share=0.0,
                            comment_share=0.0)
    a = ws.bases[0]
    store = tmp_path / "store"
    with Emulator(ws, rate_limits=False) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store),
               "AIRTABLE_TOKEN_FILE": None, "SNAPSTORE_CONFIG": None}
        assert run("snapshot", "--no-progress", env=env).exit_code == 0
        assert run("snapshot", "--no-progress", "--base", a.name.upper(), env=env).exit_code == 0
    r = run("diff", env=env)
    assert r.exit_code == 0, r.output
    assert "base removed" not in r.output and "not captured" in r.output and " -" not in r.output
    d = json.loads(run("diff", "--format", "json", env=env).stdout)
    assert not [c for c in d["schema"] if c["kind"] == "base_removed"]
    assert {t["base_id"] for t in d["tables"] if t["status"] == "not captured"} == {ws.bases[1].id}
