"""Sizes and counts read the same in every command (KiB, MiB; "1 base"), and the diff text a
person reads: values as JSON, only the changed keys of an object, the primary field's value beside
each listed record, ``label`` a plain string in JSON."""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from snapstore import units
from snapstore.cli import main
from snapstore.store import Store
from tests.storegen import SCHEMA, make_records, snapshot

OWNER = "fldOWNER000000001"
SCHEMA2 = copy.deepcopy(SCHEMA)
SCHEMA2["tables"][0]["fields"].append({"id": OWNER, "name": "Owner", "type": "singleCollaborator"})


def commit(store: Store, records: list[dict]):
    return snapshot(store, records, schema=SCHEMA2)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = tmp_path_factory.mktemp("units") / "store"
    store = Store.init(path)
    recs = make_records(40)
    for r in recs:
        r["fields"][OWNER] = {"id": "usrADA", "email": "ada@example.com", "name": "Ada Lovelace"}
    commit(store, recs)
    new = copy.deepcopy(recs)
    new[0]["fields"][OWNER] = dict(new[0]["fields"][OWNER], email="countess@example.com")  # one key of an object
    new[1]["fields"]["fldDONE0000000001"] = not new[1]["fields"].get("fldDONE0000000001", False)
    new[2]["fields"]["fldSTATUS00000001"] = "Blocked"
    commit(store, new)
    return str(path), recs


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_units():
    assert [units.size(n) for n in (0, 1023, 1536, 3 * 2**20, 5 * 2**30)] == ["0 B", "1023 B", "1.5 KiB",
                                                                            "3.0 MiB", "5.0 GiB"]
    assert [units.count(n, "base") for n in (0, 1, 2)] == ["0 bases", "1 base", "2 bases"]
    assert units.count(1500, "record") == "1,500 records" and units.count(2, "entry") == "2 entries"


def test_log_and_show_say_1_base_and_kib(world):
    path, _ = world
    head, *lines, legend = run("log", "--store", path).output.splitlines()
    assert head.split() == ["id", "time", "(UTC)", "status", "records", "changes", "added"], head
    assert legend.startswith("changes: +new ~changed -deleted records")
    assert all(ln.split()[4] == "40" for ln in lines), lines
    # binary units (a 3-record change adds under 1 KiB in format 3: "904 B")
    assert all(ln.rstrip().endswith(("iB", " B")) for ln in lines) and any(ln.rstrip().endswith("KiB") for ln in lines)
    assert "(s)" not in run("show", "--store", path).output


def test_diff_values_as_json_and_only_changed_object_keys(world):
    path, recs = world
    out = run("diff", "--store", path, "--fields").output
    assert "1 of 1 table differs: 0 added, 0 removed, 3 changed records" in out
    owner = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("Owner:"))
    assert owner == 'Owner: email: "ada@example.com" → "countess@example.com"'  # not the whole dict, not repr
    done = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("Done:"))
    assert done in ("Done: true → false", "Done: false → true")  # JSON, not Python's True
    assert 'Status: "' in out and '→ "Blocked"' in out
    assert "{'" not in out and "True" not in out


def test_record_listing_names_records_and_json_label_is_plain(world):
    path, recs = world
    out = run("diff", "--store", path).output  # record level, no --fields
    line = next(ln for ln in out.splitlines() if recs[2]["id"] in ln)
    assert line.strip() == f"~ {recs[2]['id']}  {recs[2]['fields']['fldNAME0000000001']}"
    doc = json.loads(run("diff", "--store", path, "--fields", "--format", "json").stdout)
    labels = {r["record_id"]: r["label"] for r in doc["tables"][0]["changed"]}
    assert labels[recs[0]["id"]] == recs[0]["fields"]["fldNAME0000000001"]  # no added quotes


def test_export_and_prune_print_units(world, tmp_path):
    path, _ = world
    out = run("export", "latest", "--store", path, "--out", str(tmp_path), "--format", "json").output
    assert "1 table, 40 records, 0 attachments, " in out and ("KiB in" in out or " B in" in out)
    out = run("prune", "--store", path, "--dry-run").output
    assert "bytes" not in out and "iB" in out
