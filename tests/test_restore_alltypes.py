"""The every-type round trip through Airtable's write API (issue 18): a snapshot with every field type,
table and field descriptions, a single-record link, a case-only name clash and comments (with a
reply) is restored into an empty base of the emulator and snapshotted again: mapped by id, no
difference in any writable field or comment; the clash is planned (dry run) and resolved by the
documented suffix rule."""

from __future__ import annotations

import json
from pathlib import Path

import fixtures_alltypes as F
import pytest
from restore_helpers import new_base

from snapstore import restore as R
from snapstore.emulator import Emulator
from snapstore.emulator.state import Workspace
from snapstore.ops.snapshot import Selection, SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.restore.comments import PREFIX, original_text
from snapstore.source import AirtableSource


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    store, snap = F.build(tmp_path_factory.mktemp("at") / "store", hostile=False, extras=True)
    ws = Workspace(seed=7, users=[F.USER1, F.USER2, dict(F.USER3, email="noemail@example.com")])
    with Emulator(ws, rate_limits=False, link_options="accept") as emu:  # keeps prefersSingleRecordLink
        client = AirtableSource(emu.token, emu.url, rate_base=2000, rate_token=20000)
        yield {"emu": emu, "client": client, "store": store, "snap": snap}
        client.close()


def test_every_type_round_trip_with_descriptions_single_links_clashes_and_comments(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    target = new_base(emu, "Round trip")
    src = R.SnapshotSource(store, snap)
    plan = R.restore(src, to_base=target, client=client, dry_run=True)
    # the dry run shows the clash and how it is resolved, before anything is written
    assert plan.plan["renamed"] == [{"table": "Projects", "field": "name", "id": F.F_LOWER, "new_name": "name (2)",
                                     "reason": "another field of the table has the same name ignoring case"}]
    rep = R.restore(src, to_base=target, client=client)
    assert rep.status == "complete", rep.to_dict()
    res = take_snapshot(store, client, plan_snapshot(client, Selection(bases=(target,))), SnapshotOptions(comments=True))
    assert res.status == "complete", json.dumps(res.to_dict(), default=str)[:1500]
    dst = store.resolve("latest")
    idmap = json.loads(Path(rep.id_map_file).read_text())
    id_maps = {t: v["records"] for t, v in idmap.items()}
    src_schema, dst_schema = store.schema(snap, F.BASE), store.schema(dst, target)
    dst_tables = {t["id"]: t for t in dst_schema["tables"]}
    for t in src_schema["tables"]:
        m = idmap[t["id"]]
        nt = dst_tables[m["new_table"]]
        # every writable field, ids mapped
        diffs = R.compare_tables(t, store.records(snap, F.BASE, t["id"]), list(store.records(dst, target, nt["id"])),
                                 m["fields"], id_maps)
        assert diffs == [], (t["name"], [d[-300:] for d in diffs], rep.attachments_not_uploaded, rep.warnings)
        # descriptions: the table's and each field's
        assert nt.get("description") == t.get("description")
        nf = {f["id"]: f for f in nt["fields"]}
        for f in t["fields"]:
            if f["id"] in m["fields"]:
                assert nf[m["fields"][f["id"]]].get("description") == f.get("description"), f["name"]
        # comments: same records, same order, same authors and times (in the text), same replies
        want = store.comments(snap, F.BASE, t["id"])
        got = store.comments(dst, target, nt["id"])
        back = {new: old for old, new in m["records"].items()}
        assert {back[r] for r in got} == set(want)
        for new_rec, cs in got.items():
            orig = want[back[new_rec]]
            assert [original_text(c["text"]) for c in cs] == [c["text"] for c in orig]
            assert [PREFIX.match(c["text"])["when"] for c in cs] == [c["createdTime"] for c in orig]
            assert [bool(c.get("parentCommentId")) for c in cs] == [bool(c.get("parentCommentId")) for c in orig]
    main = dst_tables[idmap[F.T_MAIN]["new_table"]]
    by_name = {f["name"]: f for f in main["fields"]}
    assert by_name["Name"]["id"] == main["primaryFieldId"] and "name (2)" in by_name
    assert by_name["Parent"]["options"]["prefersSingleRecordLink"] is True
    assert by_name["District"]["options"]["prefersSingleRecordLink"] is False
    assert rep.comments_restored == sum(len(v) for t in F.COMMENTS.values() for v in t.values())


def test_a_clash_the_rule_cannot_repair_is_refused_in_the_dry_run(env, tmp_path):
    emu, client = env["emu"], env["client"]
    store, snap = F.build(tmp_path / "store", hostile=False)
    schema = store.schema(snap, F.BASE)
    bad = store.begin_snapshot(note="empty name", command="test")
    for t in schema["tables"]:
        if t["id"] == F.T_DIST:
            t["fields"][1] = dict(t["fields"][1], name="  ")
    bad.add_base(F.BASE, "All types", schema)
    for t in schema["tables"]:
        tw = bad.table(F.BASE, t["id"])
        for r in store.records(snap, F.BASE, t["id"]):
            tw.add(r)
        tw.finish()
    info = bad.commit()
    target = new_base(emu, "Refused")
    for dry in (True, False):
        with pytest.raises(R.RestoreError, match="Districts.*fldDPOP0000000001 has an empty name"):
            R.restore(R.SnapshotSource(store, info), to_base=target, client=client, dry_run=dry)
    assert client.schema(target)["tables"] == []


def test_restore_into_a_new_base_through_to_workspace(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    wsp = emu.workspace.workspace_id
    before = {b.id for b in emu.workspace.bases}
    src = R.SnapshotSource(store, snap)
    plan = R.restore(src, to_workspace=wsp, client=client, dry_run=True)
    assert {b.id for b in emu.workspace.bases} == before and plan.target_base == f"new base in {wsp}"
    from snapstore.source import SourceError

    with pytest.raises(SourceError, match="create base.*403"):
        R.restore(src, to_workspace="wspNOSUCHWORKSP01", client=client)
    assert {b.id for b in emu.workspace.bases} == before
    rep = R.restore(src, to_workspace=wsp, client=client, base_name="Recovered")
    assert rep.status == "complete"
    new = [b for b in emu.workspace.bases if b.id not in before]
    assert [b.name for b in new] == ["Recovered"] and rep.target_base == new[0].id
    target = new[0].id
    res = take_snapshot(store, client, plan_snapshot(client, Selection(bases=(target,))), SnapshotOptions(comments=True))
    assert res.status == "complete"
    dst = store.resolve("latest")
    idmap = json.loads(Path(rep.id_map_file).read_text())
    id_maps = {t: v["records"] for t, v in idmap.items()}
    assert {t["name"] for t in store.schema(dst, target)["tables"]} == {"Projects", "Districts"}
    for t in store.schema(snap, F.BASE)["tables"]:
        m = idmap[t["id"]]
        assert R.compare_tables(t, store.records(snap, F.BASE, t["id"]), list(store.records(dst, target, m["new_table"])),
                                m["fields"], id_maps) == []
        n_src = sum(len(v) for v in store.comments(snap, F.BASE, t["id"]).values())
        assert sum(len(v) for v in store.comments(dst, target, m["new_table"]).values()) == n_src > 0
    # done once: not again by accident
    with pytest.raises(R.RestoreError, match="already completed"):
        R.restore(src, to_workspace=wsp, client=client)
