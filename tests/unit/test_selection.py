"""One selection rule for --base and --table: an id, or a name (exact first, then case-insensitive
when unique); an ambiguous name is an error (exit 2) that lists the candidates with their ids."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.selection import Ambiguous, NoSuchName, pick, select_tables
from snapstore.store import Store
from tests.helpers.selection_store import BASES, table_id, take


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sel") / "store"
    store = Store.init(path)
    take(store)
    take(store, edit=2)
    return str(path)


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


ITEMS = list(BASES.items())


def test_pick_rule():
    assert pick("appOPS00000000001", ITEMS) == "appOPS00000000001"  # an id
    assert pick("Sales", ITEMS) == "appSALES000000001"  # exact name first
    assert pick("sales", ITEMS) == "appSALESLOW000001"
    assert pick("operations", ITEMS) == "appOPS00000000001"  # case-insensitive, unique
    with pytest.raises(Ambiguous, match=r"base 'SALES' is ambiguous: Sales \(appSALES000000001\), "
                                        r"sales \(appSALESLOW000001\); give the id"):
        pick("SALES", ITEMS)
    with pytest.raises(NoSuchName, match=r"no base 'Nope' \(bases: Operations \(appOPS00000000001\), Sales"):
        pick("Nope", ITEMS)
    assert pick("Sales", [("appX", "Sales"), ("appX", "Old name")]) == "appX"  # one id seen with two names


def test_tables_by_name_base_slash_table_and_ambiguity():
    tables = [(b, n, table_id(b), "Projects") for b, n in ITEMS] + [
        ("appOPS00000000001", "Operations", table_id("appOPS00000000001", "Tasks"), "Tasks")]
    assert select_tables(["tasks"], tables) == {("appOPS00000000001", table_id("appOPS00000000001", "Tasks"))}
    assert select_tables(["operations/projects"], tables) == {("appOPS00000000001", table_id("appOPS00000000001"))}
    assert select_tables([table_id("appSALES000000001")], tables) == {("appSALES000000001", table_id("appSALES000000001"))}
    with pytest.raises(Ambiguous) as e:
        select_tables(["Projects"], tables)
    assert "Operations / Projects" in str(e.value) and table_id("appSALESLOW000001") in str(e.value)
    assert select_tables(None, tables) is None


def test_diff_and_find_take_the_same_names(store_path):
    d = json.loads(run("diff", "--store", store_path, "--base", "operations", "--format", "json").stdout)
    assert {t["base_id"] for t in d["tables"]} == {"appOPS00000000001"}
    d = json.loads(run("diff", "--store", store_path, "--base", "sales", "--table", "projects", "--format",
                       "json").stdout)
    assert [t["table_id"] for t in d["tables"]] == [table_id("appSALESLOW000001")]
    hits = json.loads(run("find", "edited", "--store", store_path, "--base", "Sales", "--json").stdout)
    assert {h["base_id"] for h in hits} == {"appSALES000000001"} and len(hits) == 2


@pytest.mark.parametrize("cmd", [["diff"], ["find", "x"], ["export", "latest", "--out", "OUT"]])
def test_ambiguous_base_is_a_usage_error_listing_candidates(store_path, tmp_path, cmd):
    cmd = [str(tmp_path) if c == "OUT" else c for c in cmd]
    r = run(*cmd, "--store", store_path, "--base", "SALES")
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "ambiguous" in r.output
    assert "appSALES000000001" in r.output and "appSALESLOW000001" in r.output
    r = run(*cmd, "--store", store_path, "--table", "Projects")
    assert r.exit_code == 2 and "table 'Projects' is ambiguous" in r.output and "Operations / Projects" in r.output
    assert list(tmp_path.iterdir()) == []  # nothing exported


def test_export_by_case_insensitive_name(store_path, tmp_path):
    r = run("export", "latest", "--store", store_path, "--base", "operations", "--table", "TASKS", "--out",
            str(tmp_path), "--format", "json", "--json")
    assert r.exit_code == 0, r.output
    assert [t["table"] for t in json.loads(r.stdout)["tables"]] == ["Tasks"]


def test_restore_plan_takes_a_base_name(store_path):
    from snapstore.restore import SnapshotSource, make_plan

    store = Store.open(store_path)
    src = SnapshotSource(store, store.resolve("latest"))
    plan = make_plan(src, "operations", "appTARGET00000001", tables=["tasks"], count_records=False)
    assert [t.src_id for t in plan.tables] == [table_id("appOPS00000000001", "Tasks")]
    with pytest.raises(Ambiguous):
        make_plan(src, "SALES", "appTARGET00000001", count_records=False)
