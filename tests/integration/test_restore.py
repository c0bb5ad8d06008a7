"""restore / revert / import against the emulator (issue 7, "What must be shown")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from restore_helpers import assert_restored, emulated, new_base, snapshot

from snapstore import restore as R
from snapstore.emulator import Emulator, generate_workspace
from snapstore.source import AirtableSource
from snapstore.store import Store

WRITE_ROUTES = {"create_base", "create_table", "update_table", "create_field", "update_field", "create_records",
                "update_records", "update_record", "delete_records", "delete_record", "upload_attachment",
                "create_comment", "update_comment", "delete_comment"}


def writes(emu) -> int:
    routes = emu.counters.snapshot()["routes"]
    return sum(v["requests"] for k, v in routes.items() if k in WRITE_ROUTES)


def computed_fields(schema) -> set[tuple[str, str]]:
    return {(t["name"], f["name"]) for t in schema["tables"] for f in t["fields"] if f["type"] in R.COMPUTED_TYPES}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    ws = generate_workspace(seed=0, bases=1, tables_per_base=3, records_per_table=20, attachment_share=0.3,
                            link_share=0.5, comment_share=0.1)
    with emulated(ws, tmp_path_factory) as env:
        yield env


def test_workspace_has_what_the_round_trip_needs(env):
    schema = env["store"].schema(env["snap"], env["base"])
    types = {f["type"] for t in schema["tables"] for f in t["fields"]}
    assert R.COMPUTED_TYPES <= types and "multipleAttachments" in types and "multipleRecordLinks" in types
    self_links = [f for t in schema["tables"] for f in t["fields"]
                  if f["type"] == "multipleRecordLinks" and f["options"]["linkedTableId"] == t["id"]]
    assert self_links


def test_dry_run_then_round_trip_into_an_empty_base(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    target = new_base(emu)
    src = R.SnapshotSource(store, snap)
    w0 = writes(emu)
    plan = R.restore(src, to_base=target, client=client, dry_run=True)
    assert writes(emu) == w0, "a dry run sends no write request"
    assert plan.dry_run and plan.status == "planned"
    assert {(f["table"], f["field"]) for f in plan.not_restorable} == computed_fields(store.schema(snap, env["base"]))

    rep = R.restore(src, to_base=target, client=client)
    assert rep.status == "complete"
    # the report lists exactly the computed fields, with their definitions
    assert {(f["table"], f["field"]) for f in rep.not_restorable} == computed_fields(store.schema(snap, env["base"]))
    formula = next(f for f in rep.not_restorable if f["type"] == "formula")
    assert formula["definition"]["options"]["formula"]
    n_atts = sum(len(r["fields"].get(f["id"]) or []) for t in store.schema(snap, env["base"])["tables"]
                 for f in t["fields"] if f["type"] == "multipleAttachments"
                 for r in store.records(snap, env["base"], t["id"]))
    assert n_atts > 0 and rep.attachments_uploaded == n_atts and not rep.attachments_not_uploaded
    assert all(t.created == snap.table(env["base"], tid).records for tid, t in rep.tables.items())
    # snapshot the restored base: no difference in any writable field, ids mapped
    dst = snapshot(store, client, target)
    assert_restored(store, snap, env["base"], dst, target, rep.id_map_file)
    # attachment bytes are the same files
    idmap = json.loads(Path(rep.id_map_file).read_text())
    t0 = store.schema(snap, env["base"])["tables"][0]
    fatt = next(f["id"] for f in t0["fields"] if f["type"] == "multipleAttachments")
    src_rec = next(r for r in store.records(snap, env["base"], t0["id"]) if r["fields"].get(fatt))
    new_rec = next(r for r in store.records(dst, target, idmap[t0["id"]]["new_table"])
                   if r["id"] == idmap[t0["id"]]["records"][src_rec["id"]])
    a, b = src_rec["fields"][fatt][0], new_rec["fields"][idmap[t0["id"]]["fields"][fatt]][0]
    assert store.open_attachment(a["id"]).read() == store.open_attachment(b["id"]).read()

    # a finished restore is not repeated by accident; --new restores again under suffixed names
    w1 = writes(emu)
    with pytest.raises(R.RestoreError, match="already completed"):
        R.restore(src, to_base=target, client=client)
    assert writes(emu) == w1
    again = R.restore(src, to_base=target, client=client, new=True, tables=[t0["name"]])
    assert again.status == "complete"
    assert [t.new_name for t in again.tables.values()] == [f"{t0['name']} (restored)"]
    assert again.not_restorable and all(f["table"] == t0["name"] for f in again.not_restorable)


def test_keep_computed_values_keeps_them_as_text(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    target = new_base(emu)
    t0 = store.schema(snap, env["base"])["tables"][0]
    rep = R.restore(R.SnapshotSource(store, snap), to_base=target, client=client, tables=[t0["id"]],
                    keep_computed=True)
    kept = [f for f in rep.not_restorable if f.get("kept_as")]
    # links to tables not restored are reported too
    assert {f["field"] for f in kept} == {f["name"] for f in t0["fields"] if f["type"] in R.COMPUTED_TYPES}
    schema = client.schema(target)["tables"][0]
    label = next(f for f in schema["fields"] if f["name"] == "Label")
    assert label["type"] == "multilineText" and "formula" in label.get("description", "")
    recs = [r for p in client.iter_pages(target, schema["id"]) for r in p]
    fid = next(f["id"] for f in t0["fields"] if f["name"] == "Label")
    src_vals = sorted(str(r["fields"][fid]) for r in store.records(snap, env["base"], t0["id"]) if fid in r["fields"])
    assert sorted(r["fields"][label["id"]] for r in recs if label["id"] in r["fields"]) == src_vals


@pytest.mark.parametrize("where", ["records", "records-unjournaled", "links", "uploads"])
def test_interrupted_restore_resumes_without_duplicates(env, where):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    target = new_base(emu, f"Target {where}")
    src = R.SnapshotSource(store, snap)
    with pytest.raises(R.SimulatedCrash):
        R.restore(src, to_base=target, client=client, fail_after=(where, 2))
    rep = R.restore(src, to_base=target, client=client)
    assert rep.status == "complete"
    if where != "records-unjournaled":
        assert sum(t.resumed for t in rep.tables.values()) > 0
    # no duplicates (assert_restored also counts the records of every table)
    assert_restored(store, snap, env["base"], None, target, rep.id_map_file, client)


def _export(env, out):
    from snapstore_exporters.export import export_snapshot

    res = export_snapshot(env["store"], env["snap"], out, formats=["json"])
    return Path(res.path)


def test_exported_folder_restores_and_imports_with_equal_hashes(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    folder = _export(env, env["tmp"] / "exp1")
    # import into a fresh store: same record ids and hashes as the original snapshot
    other = Store.open(env["tmp"] / "imported", create=True)
    info = R.import_folder(folder, other)
    for t in snap.bases[0].tables:
        a = store.record_hashes(snap, env["base"], t.table_id).sort_by("record_id")
        b = other.record_hashes(info, env["base"], t.table_id).sort_by("record_id")
        assert a.equals(b), t.name
    assert other.schema(info, env["base"]) == store.schema(snap, env["base"])
    for r in store.records(snap, env["base"], snap.bases[0].tables[0].table_id):
        for cell in r["fields"].values():
            if isinstance(cell, list) and cell and isinstance(cell[0], dict) and str(cell[0].get("id")).startswith("att"):
                assert other.open_attachment(cell[0]["id"]).read() == store.open_attachment(cell[0]["id"]).read()
    # restore from the folder into an empty base
    target = new_base(emu, "From folder")
    rep = R.restore(R.FolderSource(folder), to_base=target, client=client)
    assert rep.status == "complete" and rep.attachments_uploaded > 0
    assert Path(rep.journal).parent == folder.parent / f"{folder.name}.restores"
    assert_restored(store, snap, env["base"], None, target, rep.id_map_file, client)


def test_tampered_export_is_refused_before_any_write(env):
    emu, client = env["emu"], env["client"]
    folder = _export(env, env["tmp"] / "exp2")
    data = next((folder / "data" / "json").rglob("*.json"))
    data.write_bytes(data.read_bytes().replace(b'"Name"', b'"Nome"', 1))
    target = new_base(emu, "Tampered")
    w0 = writes(emu)
    with pytest.raises(R.TamperedExport, match="sha256|size"):
        R.restore(R.FolderSource(folder), to_base=target, client=client)
    with pytest.raises(R.TamperedExport):
        R.import_folder(folder, Store.open(env["tmp"] / "tampered-import", create=True))
    assert writes(emu) == w0
    # an extra file is refused too
    folder2 = _export(env, env["tmp"] / "exp3")
    (folder2 / "data" / "json" / "extra.json").write_text("[]")
    with pytest.raises(R.TamperedExport, match="not in the manifest"):
        R.FolderSource(folder2)


def test_cli_restore_dry_run_and_import(env, monkeypatch):
    from snapstore.commands.import_ import import_ as import_cmd
    from snapstore.commands.restore import restore as restore_cmd

    assert import_cmd.name == "import"
    emu, store, snap = env["emu"], env["store"], env["snap"]
    target = new_base(emu, "CLI")
    monkeypatch.setenv("AIRTABLE_TOKEN", emu.token)
    monkeypatch.setenv("AIRTABLE_API_URL", emu.url)
    w0 = writes(emu)
    res = CliRunner().invoke(restore_cmd, [snap.id, "--store", str(store.root), "--to-base", target, "--dry-run",
                                           "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["dry_run"] and doc["not_restorable"] and writes(emu) == w0
    res = CliRunner().invoke(restore_cmd, [snap.id, "--store", str(store.root), "--to-base", target,
                                           "--rate-limit-base", "2000", "--rate-limit-token", "20000"])
    assert res.exit_code == 0, res.output
    assert "Not restorable" in res.output and "Id map:" in res.output
    res = CliRunner().invoke(restore_cmd, [snap.id, "--store", str(store.root), "--to-base", target])
    assert res.exit_code == 1 and "already completed" in res.output
    folder = _export(env, env["tmp"] / "exp4")
    res = CliRunner().invoke(import_cmd, [str(folder), "--store", str(env["tmp"] / "cli-import")])
    assert res.exit_code == 0, res.output
    assert "imported" in res.output


# ---------------------------------------------------------------------------------------- revert


@pytest.fixture
def small(tmp_path):
    ws = generate_workspace(seed=3, bases=1, tables_per_base=2, records_per_table=30, attachment_share=0.3,
                            link_share=0.5, comment_share=0.0)
    with Emulator(ws, rate_limits=False) as emu:
        client = AirtableSource(emu.token, emu.url, rate_base=2000, rate_token=20000)
        store = Store.open(tmp_path / "store", create=True)
        base = ws.bases[0].id
        snap = snapshot(store, client, base)
        yield {"emu": emu, "client": client, "store": store, "snap": snap, "base": base}
        client.close()


def _writable_diff(store, snap, base, table_id, after, alias):
    t = next(t for t in store.schema(snap, base)["tables"] if t["id"] == table_id)
    identity = {f["id"]: f["id"] for f in t["fields"]}
    ids = {r["id"]: r["id"] for r in store.records(snap, base, table_id)}
    ids.update(alias)
    id_maps = {tt["id"]: ({**{r: r for r in (x["id"] for x in store.records(snap, base, tt["id"]))}, **alias})
               for tt in store.schema(snap, base)["tables"]}
    id_maps[table_id] = ids
    return R.compare_tables(t, store.records(snap, base, table_id), list(store.records(after, base, table_id)),
                            identity, id_maps)


def _all_aliases(store) -> dict[str, str]:
    alias = {}
    for p in sorted((Path(store.private_dir) / "restores").glob("revert-*.sqlite")):
        j = R.RestoreJournal(p)
        alias.update(j.record_map())
        j.close()
    return alias


@pytest.mark.parametrize("interrupt", [False, True])
def test_revert_after_churn_brings_the_tables_back(small, interrupt):
    emu, client, store, snap, base = small["emu"], small["client"], small["store"], small["snap"], small["base"]
    tables = snap.bases[0].tables
    emu.churn(seed=5, edit_share=0.3, add_share=0.2, delete_share=0.2)
    mid = snapshot(store, client, base)
    assert _writable_diff(store, snap, base, tables[0].table_id, mid, {}) != []
    src = R.SnapshotSource(store, snap)
    w0 = writes(emu)
    plan = R.revert(src, client=client, base_id=base, table=tables[0].name, delete_added=True, dry_run=True)
    assert writes(emu) == w0, "the plan is shown without writing"
    assert plan.plan["recreate"] > 0 and plan.plan["update"] > 0 and plan.plan["added_since"] > 0
    if interrupt:
        with pytest.raises(R.SimulatedCrash):
            R.revert(src, client=client, base_id=base, table=tables[0].table_id, delete_added=True,
                     fail_after=("any", 1))
    # links cross tables: revert every table, then the first again (its links to records the second
    # re-created are put back in their order)
    for t in [*tables, tables[0]]:
        rep = R.revert(src, client=client, base_id=base, table=t.table_id, delete_added=True)
        assert rep.status == "complete"
    after = snapshot(store, client, base)
    alias = _all_aliases(store)
    for t in tables:
        assert after.table(base, t.table_id).records == t.records, t.name
        assert _writable_diff(store, snap, base, t.table_id, after, alias) == [], t.name
        again = R.revert(src, client=client, base_id=base, table=t.table_id, delete_added=True, dry_run=True)
        assert (again.plan["recreate"], again.plan["update"], again.plan["added_since"]) == (0, 0, 0)


def test_revert_chosen_records_only(small):
    emu, client, store, snap, base = small["emu"], small["client"], small["store"], small["snap"], small["base"]
    table = snap.bases[0].tables[1]
    rep = emu.churn(seed=9, edit_share=0.5, add_share=0.0, delete_share=0.0)
    edited = rep["tables"][table.table_id]["edited"]
    assert len(edited) >= 2
    rid = edited[0] if isinstance(edited[0], str) else edited[0]["id"]
    out = R.revert(R.SnapshotSource(store, snap), client=client, base_id=base, table=table.table_id, records=[rid])
    assert out.plan["update"] == 1 and out.tables[table.table_id].updated == 1


def test_revert_across_a_field_rename_reports_it_and_schema_renames_it_back(small):
    from snapstore.source.writer_client import AirtableWriter

    emu, client, store, snap, base = small["emu"], small["client"], small["store"], small["snap"], small["base"]
    table = snap.bases[0].tables[0]
    st = next(t for t in store.schema(snap, base)["tables"] if t["id"] == table.table_id)
    f = next(f for f in st["fields"] if f["type"] in ("number", "singleSelect", "multilineText", "email")
             and f["id"] != st["primaryFieldId"])
    w = AirtableWriter(client.api, base)
    w.rename_field(table.table_id, f["id"], f"{f['name']} renamed")
    emu.churn(seed=11, edit_share=0.4, add_share=0.0, delete_share=0.0)
    src = R.SnapshotSource(store, snap)
    w0 = writes(emu)
    plan = R.revert(src, client=client, base_id=base, table=table.table_id, dry_run=True)
    assert writes(emu) == w0
    assert plan.plan["schema_changes"]["renamed"] == [{"id": f["id"], "from": f["name"], "to": f"{f['name']} renamed"}]
    # the dry run speaks in "would"
    from snapstore.commands.restore import _human

    text = _human(plan.to_dict())
    assert "would create" in text and "would rewrite" in text and "created " not in text.replace("would create", "")
    assert "--schema renames it back" in text
    # without --schema the name stays (values are reverted by field id); with it, it is renamed back
    rep = R.revert(src, client=client, base_id=base, table=table.table_id, schema=True)
    assert rep.status == "complete"
    live = {x["id"]: x["name"] for t in client.schema(base)["tables"] if t["id"] == table.table_id for x in t["fields"]}
    assert live[f["id"]] == f["name"]
    after = snapshot(store, client, base)
    assert _writable_diff(store, snap, base, table.table_id, after, _all_aliases(store)) == []
    # and it wrote its report
    doc = json.loads(Path(rep.journal).with_suffix(".report.json").read_text())
    assert doc["mode"] == "revert" and doc["status"] == "complete" and doc["plan"]["schema_changes"]["renamed"]


def test_revert_with_an_unreadable_linked_table_warns_instead_of_aborting(small, monkeypatch):
    from snapstore.source.writer_client import AirtableWriter, WriteFailed

    client, store, snap, base = small["client"], small["store"], small["snap"], small["base"]
    tables = snap.bases[0].tables
    small["emu"].churn(seed=12, edit_share=0.3, add_share=0.0, delete_share=0.0)
    real = AirtableWriter.list_ids

    def list_ids(self, table_id, fields=None):
        if table_id != tables[0].table_id:
            raise WriteFailed(f"list {table_id}: access denied (403 INVALID_PERMISSIONS)", 403)
        return real(self, table_id, fields)

    monkeypatch.setattr(AirtableWriter, "list_ids", list_ids)
    sch = store.schema(snap, base)["tables"][0]
    assert any(f["type"] == "multipleRecordLinks" and f["options"]["linkedTableId"] != sch["id"] for f in sch["fields"])
    rep = R.revert(R.SnapshotSource(store, snap), client=client, base_id=base, table=tables[0].table_id)
    assert rep.status == "complete"
    assert any("cannot be read (403)" in w for w in rep.warnings)
