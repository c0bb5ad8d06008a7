"""`snapstore find` and `snapstore cat` on a churned emulator workspace: a value set two snapshots
ago is found with the snapshots it spans, and an old version prints under its old field names."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, churn, generate_workspace
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource
from snapstore.store import Store

WS = dict(seed=5, bases=2, tables_per_base=2, records_per_table=30, attachment_share=0.0, comment_share=0.0)
NEEDLE = "Zebra Quokka 4711"


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """s1; Notes of one record set to NEEDLE -> s2; churn -> s3; Notes edited away and the field
    renamed "Remarks" -> s4; churn -> s5 (latest)."""
    path = tmp_path_factory.mktemp("find") / "store"
    store = Store.init(path)
    ws = generate_workspace(**WS)
    base = ws.bases[0]
    table = base.tables[0]
    notes = next(f for f in table.fields if f["name"] == "Notes")
    rid = sorted(table.records)[3]
    with Emulator(ws, rate_limits=False) as emu:
        src = AirtableSource(emu.token, emu.url)

        def snap():
            take_snapshot(store, src, plan_snapshot(src), SnapshotOptions(attachments=False))
            return store.list_snapshots()[0]

        s1 = snap()
        with emu.lock:
            table.records[rid].cells[notes["id"]] = f"Met at the fair: {NEEDLE}, call back"
        s2 = snap()
        with emu.lock:
            churn(ws, seed=1, edit_share=0.2)
        s3 = snap()
        with emu.lock:
            table.records[rid].cells[notes["id"]] = "nothing to see"
            notes["name"] = "Remarks"
            table.reindex()
        s4 = snap()
        with emu.lock:
            churn(ws, seed=2, edit_share=0.2)
        s5 = snap()
    return dict(path=str(path), rid=rid, base=base, table=table, field_id=notes["id"], snaps=[s1, s2, s3, s4, s5])


def test_find_all_reports_the_versions_span(world):
    r = run(["find", "zebra quokka", "--all", "--json", "--store", world["path"]])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    s = world["snaps"]
    assert [h["record_id"] for h in hits] == [world["rid"]]
    h = hits[0]
    assert [x["id"] for x in h["snapshots"]] == [s[1].full_id, s[2].full_id]
    assert h["first"]["short_id"] == s[1].id and h["last"]["id"] == s[2].full_id
    assert h["current"] is False
    assert h["table"] == world["table"].name and h["base"] == world["base"].name
    assert list(h["fields"]) == ["Notes"] and NEEDLE in h["fields"]["Notes"]

    text = run(["find", "ZEBRA QUOKKA", "--all", "--store", world["path"]]).output.splitlines()
    assert text[0].startswith(f"{world['rid']}  {world['base'].name} / {world['table'].name}")
    assert any(line.strip().startswith("Notes: ") and NEEDLE in line for line in text)
    assert text[-2].strip().startswith(f"in 2 snapshots: {s[1].id} {s[2].id} (")
    assert not text[-2].endswith("(current)")
    assert text[-1] == "1 version found"


def test_find_one_snapshot(world):
    s = world["snaps"]
    latest = run(["find", NEEDLE, "--store", world["path"]])
    assert latest.exit_code == 0
    assert latest.output.strip() == f"no record contains {NEEDLE!r} in snapshot latest"
    old = json.loads(run(["find", NEEDLE, "--snapshot", "latest~2", "--json", "--store", world["path"]]).stdout)
    assert [(h["record_id"], [x["short_id"] for x in h["snapshots"]]) for h in old] == [
        (world["rid"], [s[1].id, s[2].id])]


def test_find_field_old_and_new_name(world):
    for name in ("Notes", "remarks", world["field_id"]):
        hits = json.loads(run(["find", "quokka", "--all", "--field", name, "--json", "--store", world["path"]]).stdout)
        assert [h["record_id"] for h in hits] == [world["rid"]], name
    assert json.loads(run(["find", "quokka", "--all", "--field", "Name", "--json", "--store", world["path"]]).stdout) == []
    r = run(["find", "quokka", "--field", "No such field", "--store", world["path"]])
    assert r.exit_code == 2 and "no field 'No such field'" in r.output


def test_find_every_hit_really_contains_the_text(world):
    """A common word: every reported version holds it in a reported field, and the latest
    snapshot's hits are exactly the records whose cells contain it (checked record by record)."""
    store = Store.open(world["path"])
    latest = store.list_snapshots()[0]
    expect = set()
    for b in latest.bases:
        for t in b.tables:
            for rec in store.records(latest, b.base_id, t.table_id):
                if any("an" in json.dumps(v, ensure_ascii=False).lower() for v in rec["fields"].values()
                       if isinstance(v, str)):
                    expect.add(rec["id"])
    hits = json.loads(run(["find", "AN", "--json", "--store", world["path"]]).stdout)
    got = {h["record_id"] for h in hits}
    assert expect <= got and all(h["current"] for h in hits)
    assert all(any("an" in json.dumps(v, ensure_ascii=False).lower() for v in h["fields"].values()) for h in hits)


def test_find_base_and_table_selection(world):
    p = world["path"]
    amb = run(["find", "quokka", "--table", "projects", "--all", "--store", p])
    assert amb.exit_code == 2 and "ambiguous" in amb.output and world["table"].id in amb.output
    one = json.loads(run(["find", "quokka", "--all", "--base", world["base"].name.lower(), "--table", "projects",
                          "--json", "--store", p]).stdout)
    assert [h["record_id"] for h in one] == [world["rid"]]
    other = [b for b in world["snaps"][0].bases if b.base_id != world["base"].id][0]
    assert json.loads(run(["find", "quokka", "--all", "--base", other.base_id, "--json", "--store", p]).stdout) == []
    bad = run(["find", "quokka", "--base", "Nope", "--store", p])
    assert bad.exit_code == 2 and "no base 'Nope'" in bad.output and world["base"].name in bad.output
    both = run(["find", "quokka", "--all", "--snapshot", "latest~1", "--store", p])
    assert both.exit_code == 2


def test_cat_old_version_has_old_field_names(world):
    s, p, rid = world["snaps"], world["path"], world["rid"]
    old = json.loads(run(["cat", s[1].id, rid, "--json", "--store", p]).stdout)
    assert old["snapshot"]["id"] == s[1].full_id and old["record_id"] == rid
    assert NEEDLE in old["fields"]["Notes"] and "Remarks" not in old["fields"]
    assert old["field_ids"]["Notes"] == world["field_id"]
    assert [x["short_id"] for x in old["snapshots"]] == [s[1].id, s[2].id]
    new = json.loads(run(["cat", "latest", rid, "--json", "--store", p]).stdout)
    assert new["fields"]["Remarks"] == "nothing to see" and "Notes" not in new["fields"]

    text = run(["cat", s[1].id, rid, "--store", p]).output.splitlines()
    assert text[0].startswith(f"{rid}  {world['base'].name} / {world['table'].name}  snapshot {s[1].id}")
    notes = next(line for line in text if line.startswith("Notes"))
    assert notes.split(": ", 1)[1] == json.dumps(f"Met at the fair: {NEEDLE}, call back")


def test_cat_errors(world):
    p, rid = world["path"], world["rid"]
    r = run(["cat", "latest", "recNOPE00000000", "--store", p])
    assert r.exit_code == 1 and "record recNOPE00000000 is not in snapshot" in r.output
    r = run(["cat", "nosuchsnap", rid, "--store", p])
    assert r.exit_code == 1 and "no snapshot named 'nosuchsnap'" in r.output
