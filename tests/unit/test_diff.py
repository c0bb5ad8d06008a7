"""snapstore diff / history: snapshots built directly with the store's writer API."""

from __future__ import annotations

import copy
import io
import json

import pytest
from click.testing import CliRunner

from snapstore.commands.diff import diff as diff_cmd
from snapstore.commands.diff_render import render_markdown, render_text
from snapstore.commands.history import history as history_cmd
from snapstore.ops.diff import diff_snapshots, history
from snapstore.selection import SelectionError
from snapstore.store import Store, StoreError

BASE = "appSales000000001"
T_DEALS, T_PEOPLE, T_OLD, T_NEW = "tblDeals000000001", "tblPeople00000001", "tblOld00000000001", "tblNew00000000001"

NOTES = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog" for i in range(12))
FILES = {"attAAAAAAAAAAAAA1": b"first file", "attAAAAAAAAAAAAA2": b"second file",
         "attAAAAAAAAAAAAA9": b"replacement file", "attAAAAAAAAAAAAA3": b"second file"}


def _att(att_id: str, name: str, **extra) -> dict:
    return {"id": att_id, "filename": name, "size": len(FILES[att_id]), "type": "text/plain",
            "url": f"https://dl.example/{att_id}?sig=123", **extra}


def _schema(deals_status="Status", people="People", amount_type="number", priority=False, old=True, new=False):
    deals_fields = [
        {"id": "fldName", "name": "Name", "type": "singleLineText"},
        {"id": "fldNotes", "name": "Notes", "type": "multilineText"},
        {"id": "fldFiles", "name": "Files", "type": "multipleAttachments", "options": {"isReversed": False}},
        {"id": "fldStatus", "name": deals_status, "type": "singleSelect",
         "options": {"choices": [{"id": "selA", "name": "Open"}, {"id": "selB", "name": "Won"}]}},
        {"id": "fldAmount", "name": "Amount", "type": amount_type, "options": {"precision": 0}},
        {"id": "fldTags", "name": "Tags", "type": "multipleSelects", "options": {"choices": []}},
    ]
    if priority:
        deals_fields.append({"id": "fldPrio", "name": "Priority", "type": "number", "options": {"precision": 0}})
    tables = [
        {"id": T_DEALS, "name": "Deals", "primaryFieldId": "fldName", "fields": deals_fields, "views": []},
        {"id": T_PEOPLE, "name": people, "primaryFieldId": "fldPName",
         "fields": [{"id": "fldPName", "name": "Name", "type": "singleLineText"}], "views": []},
    ]
    if old:
        tables.append({"id": T_OLD, "name": "Old", "primaryFieldId": "fldOName",
                       "fields": [{"id": "fldOName", "name": "Name", "type": "singleLineText"}], "views": []})
    if new:
        tables.append({"id": T_NEW, "name": "New", "primaryFieldId": "fldNName",
                       "fields": [{"id": "fldNName", "name": "Name", "type": "singleLineText"}], "views": []})
    return {"tables": tables}


def _deal(i: int, **fields) -> dict:
    f = {"fldName": f"Deal {i}", "fldAmount": i * 100, "fldStatus": "Open"}
    f.update(fields)
    return {"id": f"recDeal{i:010d}", "createdTime": "2026-01-01T00:00:00.000Z",
            "fields": {k: v for k, v in f.items() if v is not None}}


def rid(i: int) -> str:
    return f"recDeal{i:010d}"


def initial_state() -> dict:
    deals = {i: _deal(i) for i in range(1, 21)}
    deals[4]["fields"]["fldNotes"] = NOTES
    deals[6]["fields"]["fldFiles"] = [_att("attAAAAAAAAAAAAA1", "a.txt")]
    deals[7]["fields"]["fldFiles"] = [_att("attAAAAAAAAAAAAA2", "b.txt")]
    deals[8]["fields"]["fldTags"] = ["x", "y"]
    return {
        "schema": _schema(),
        "tables": {
            T_DEALS: deals,
            T_PEOPLE: {i: {"id": f"recPers{i:010d}", "createdTime": "2026-01-01T00:00:00.000Z",
                           "fields": {"fldPName": f"P{i}"}} for i in range(5)},
            T_OLD: {i: {"id": f"recOldR{i:010d}", "createdTime": "2026-01-01T00:00:00.000Z",
                        "fields": {"fldOName": f"O{i}"}} for i in range(3)},
        },
    }


def commit(store: Store, state: dict, *, missing: tuple = (), note: str | None = None):
    w = store.begin_snapshot(note=note)
    for att_id, data in FILES.items():
        if not w.known_attachment(att_id):
            w.add_attachment(att_id, io.BytesIO(data), size=len(data), filename=f"{att_id}.txt", mime="text/plain")
    w.add_base(BASE, "Sales", state["schema"])
    for tid, recs in state["tables"].items():
        if tid in missing:
            w.mark_missing(BASE, tid, "timed out")
            continue
        tw = w.table(BASE, tid)
        for r in recs.values():
            tw.add(r)
        tw.finish()
    return w.commit()


def churn(state: dict) -> dict:
    """The known edits between s1 and s2."""
    s = copy.deepcopy(state)
    d = s["tables"][T_DEALS]
    d[3]["fields"]["fldName"] = "Deal three, renamed"  # edit
    d[4]["fields"]["fldNotes"] = NOTES.replace("line 5: the quick brown fox", "line 5: the slow red fox")  # long text
    d[5]["fields"]["fldAmount"] = 555  # edit
    d[6]["fields"]["fldFiles"] = [_att("attAAAAAAAAAAAAA9", "a.txt")]  # attachment replaced (new content)
    d[8]["fields"]["fldTags"] = ["y", "z"]
    d[21] = _deal(21)  # adds
    d[22] = _deal(22)
    del d[10]  # delete
    s["schema"] = _schema(deals_status="Stage", people="Contacts", amount_type="currency", priority=True,
                          old=False, new=True)
    del s["tables"][T_OLD]
    s["tables"][T_NEW] = {i: {"id": f"recNewR{i:010d}", "createdTime": "2026-01-02T00:00:00.000Z",
                              "fields": {"fldNName": f"N{i}"}} for i in range(2)}
    return s


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """s1 -> churn -> s2 -> s3 (identical) -> s4 (rec3 edited, rec10 re-created) -> s5 (rec3 edited)
    -> s6 (partial: Deals not captured)."""
    path = tmp_path_factory.mktemp("store") / "store"
    store = Store.open(path, create=True)
    st1 = initial_state()
    s1 = commit(store, st1)
    st2 = churn(st1)
    s2 = commit(store, st2)
    s3 = commit(store, st2)
    st4 = copy.deepcopy(st2)
    st4["tables"][T_DEALS][3]["fields"]["fldName"] = "Deal three, again"
    st4["tables"][T_DEALS][10] = _deal(10)  # re-created with the same id (restored from the trash)
    s4 = commit(store, st4)
    st5 = copy.deepcopy(st4)
    st5["tables"][T_DEALS][3]["fields"]["fldName"] = "Deal three, final"
    st5["tables"][T_DEALS][3]["fields"]["fldAmount"] = 333
    s5 = commit(store, st5)
    s6 = commit(store, st5, missing=(T_DEALS,))
    return {"path": str(path), "store": store, "s": [None, s1, s2, s3, s4, s5, s6]}


def _ids(td, kind):
    return sorted(r.record_id for r in getattr(td, kind))


def test_churn_reports_exactly_the_edits(world):
    store, s = world["store"], world["s"]
    d = diff_snapshots(store, s[1], s[2], fields=True)
    by_table = {t.table_id: t for t in d.tables}
    assert set(by_table) == {T_DEALS, T_OLD, T_NEW}  # People/Contacts: renamed only, no record changed
    deals = by_table[T_DEALS]
    assert _ids(deals, "added") == [rid(21), rid(22)]
    assert _ids(deals, "removed") == [rid(10)]
    assert _ids(deals, "changed") == [rid(3), rid(4), rid(5), rid(6), rid(8)]
    assert (deals.records_a, deals.records_b) == (20, 21)
    assert by_table[T_OLD].status == "removed" and len(by_table[T_OLD].removed) == 3
    assert by_table[T_NEW].status == "added" and len(by_table[T_NEW].added) == 2
    assert d.totals == {"added": 4, "removed": 4, "changed": 5, "tables": 3, "schema_changes": 6, "comments": 0}

    ch = {r.record_id: r for r in deals.changed}
    (f3,) = ch[rid(3)].fields
    assert (f3.name, f3.old, f3.new) == ("Name", "Deal 3", "Deal three, renamed")
    assert ch[rid(3)].label == "Deal three, renamed"  # a plain string, not JSON-encoded
    (f4,) = ch[rid(4)].fields
    assert f4.name == "Notes" and f4.text_diff is not None
    assert "-line 5: the quick brown fox jumps over the lazy dog" in f4.text_diff
    assert "+line 5: the slow red fox jumps over the lazy dog" in f4.text_diff
    assert len(f4.text_diff) <= 6  # compact: one line of context
    (f5,) = ch[rid(5)].fields
    assert (f5.old, f5.new, f5.type) == (500, 555, "currency")
    (f6,) = ch[rid(6)].fields
    assert [e["id"] for e in f6.attachments["removed"]] == ["attAAAAAAAAAAAAA1"]
    assert [e["id"] for e in f6.attachments["added"]] == ["attAAAAAAAAAAAAA9"]
    assert f6.attachments["added"][0]["content_hash"] != f6.attachments["removed"][0]["content_hash"]
    (f8,) = ch[rid(8)].fields
    assert f8.items == {"removed": ["x"], "added": ["z"]}

    kinds = sorted((c.kind, c.table_id, c.field_id, c.old, c.new) for c in d.schema
                   if c.kind != "field_options_changed")
    assert kinds == sorted([
        ("table_renamed", T_PEOPLE, None, "People", "Contacts"),
        ("field_renamed", T_DEALS, "fldStatus", "Status", "Stage"),
        ("field_added", T_DEALS, "fldPrio", None, "number"),
        ("field_type_changed", T_DEALS, "fldAmount", "number", "currency"),
        ("table_removed", T_OLD, None, None, None),
        ("table_added", T_NEW, None, None, None),
    ])
    assert not [c for c in d.schema if c.kind == "field_options_changed"]


def test_no_change_is_empty(world):
    store, s = world["store"], world["s"]
    for a, b in ((s[2], s[3]), (s[3], s[2]), (s[1], s[1])):
        d = diff_snapshots(store, a, b, fields=True)
        assert d.empty and d.tables == [] and d.schema == []
    assert "no differences" in render_text(diff_snapshots(store, s[2], s[3]))


def test_mirror(world):
    store, s = world["store"], world["s"]
    for a, b in ((s[1], s[2]), (s[1], s[5]), (s[2], s[4])):
        fwd = diff_snapshots(store, a, b, fields=True)
        back = diff_snapshots(store, b, a, fields=True)
        f = {t.table_id: t for t in fwd.tables}
        r = {t.table_id: t for t in back.tables}
        assert set(f) == set(r)
        for tid in f:
            assert _ids(f[tid], "added") == _ids(r[tid], "removed")
            assert _ids(f[tid], "removed") == _ids(r[tid], "added")
            assert _ids(f[tid], "changed") == _ids(r[tid], "changed")
            rb = {x.record_id: x for x in r[tid].changed}
            for x in f[tid].changed:
                y = rb[x.record_id]
                assert (x.old_hash, x.new_hash) == (y.new_hash, y.old_hash)
                assert [(c.field_id, c.old, c.new) for c in x.fields] == [(c.field_id, c.new, c.old) for c in y.fields]
        flip = {"added": "removed", "removed": "added"}
        fs = sorted((c.kind, c.table_id, c.field_id, str(c.old), str(c.new)) for c in fwd.schema)
        rs = []
        for c in back.schema:
            kind = c.kind
            for k, v in flip.items():
                if kind.endswith("_" + k):
                    kind = kind[: -len(k)] + v
                    break
            old, new = c.new, c.old
            rs.append((kind, c.table_id, c.field_id, str(old), str(new)))
        assert fs == sorted(rs)


def test_history_three_edits(world):
    store = world["store"]
    vs = history(store, rid(3))
    # created in s1, then edited three times (s2, s4, s5): the original and three edited versions
    assert [v.began for v in vs] == ["created", "changed", "changed", "changed"]
    assert [v.snapshots for v in vs][1] == [world["s"][2].id, world["s"][3].id]
    assert [[(c.name, c.old, c.new) for c in v.changes] for v in vs[1:]] == [
        [("Name", "Deal 3", "Deal three, renamed")],
        [("Name", "Deal three, renamed", "Deal three, again")],
        [("Name", "Deal three, again", "Deal three, final"), ("Amount", 300, 333)],
    ]
    assert [v.ended for v in vs] == ["changed", "changed", "changed", "table absent"]  # s6 skipped Deals
    # one field, by name: Amount changed once after creation
    va = history(store, rid(3), field="Amount")
    assert [v.values for v in va] == [{"Amount": 300}, {"Amount": 333}]
    assert va[0].snapshots == [x.id for x in world["s"][1:5]]


def test_history_deleted_then_recreated(world):
    vs = history(world["store"], rid(10))
    assert [(v.began, v.ended) for v in vs] == [("created", "deleted"), ("re-created", "table absent")]
    assert vs[0].ended_in.id == world["s"][2].id
    assert vs[1].first.id == world["s"][4].id
    with pytest.raises(StoreError, match="in no snapshot"):
        history(world["store"], "recNOPE")
    with pytest.raises(StoreError, match="no field"):
        history(world["store"], rid(3), field="Nope")


def test_partial_snapshot_table_not_captured(world):
    store, s = world["store"], world["s"]
    d = diff_snapshots(store, s[5], s[6])
    (td,) = d.tables
    assert td.status == "not captured" and not td.removed and "timed out" in td.note
    assert not d.schema


def test_filters_and_renderers(world):
    store, s = world["store"], world["s"]
    d = diff_snapshots(store, s[1], s[2], tables=["Old"])
    assert [t.table_id for t in d.tables] == [T_OLD]
    assert [c.kind for c in d.schema] == ["table_removed"]
    d = diff_snapshots(store, s[1], s[2], tables=["Contacts"])  # the name as of B
    assert d.tables == [] and [c.kind for c in d.schema] == ["table_renamed"]
    with pytest.raises(SelectionError, match="no table 'Nope' in snapshots .*Sales / Deals"):
        diff_snapshots(store, s[1], s[2], tables=["Nope"])
    d = diff_snapshots(store, s[1], s[2], fields=True)
    text = render_text(d, color=False)
    assert text.index("3 of 4 tables differ") < text.index(rid(21))  # counts first, then records
    assert "Status → Stage" in text and "\x1b[" not in text
    assert "\x1b[" in render_text(d, color=True)
    md = render_markdown(d)
    assert md.startswith("## snapstore diff") and "```diff" in md and "| Sales | Deals |" in md


def test_cli_diff(world):
    runner = CliRunner()
    s, path = world["s"], world["path"]
    res = runner.invoke(diff_cmd, [s[1].id, s[2].id, "--store", path, "--format", "json", "--fields"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["totals"]["changed"] == 5 and doc["a"]["id"] == s[1].full_id and doc["a"]["short_id"] == s[1].id
    deals = next(t for t in doc["tables"] if t["table_id"] == T_DEALS)
    notes = next(r for r in deals["changed"] if r["record_id"] == rid(4))["fields"][0]
    assert notes["name"] == "Notes" and any(ln.startswith("+line 5") for ln in notes["text_diff"])

    res = runner.invoke(diff_cmd, ["--store", path, "--fields"])  # default: the two latest
    assert res.exit_code == 0 and "diff " + s[5].id + " → " + s[6].id in res.output

    res = runner.invoke(diff_cmd, [s[2].id, s[3].id, "--store", path, "--exit-code"])
    assert res.exit_code == 0 and "no differences" in res.output
    res = runner.invoke(diff_cmd, [s[1].id, s[2].id, "--store", path, "--exit-code", "--limit", "1"])
    assert res.exit_code == 1 and "… and 1 more added" in res.output

    res = runner.invoke(diff_cmd, ["nosuchsnap", "--store", path])
    assert res.exit_code != 0
    assert res.output.strip().count("\n") == 0 and "no snapshot named 'nosuchsnap'" in res.output
    res = runner.invoke(diff_cmd, [s[1].id, s[2].id, "--store", path, "--table", "Nope"])
    assert res.exit_code == 2 and res.output.startswith("Error: no table 'Nope' in snapshots")


def test_cli_history(world):
    runner = CliRunner()
    path = world["path"]
    res = runner.invoke(history_cmd, [rid(3), "--store", path])
    assert res.exit_code == 0, res.output
    assert "4 version(s)" in res.output and '"Deal three, again" → "Deal three, final"' in res.output
    res = runner.invoke(history_cmd, [rid(3), "--store", path, "--format", "json", "--field", "fldAmount"])
    assert [v["values"] for v in json.loads(res.output)["versions"]] == [{"Amount": 300}, {"Amount": 333}]
    res = runner.invoke(history_cmd, [rid(10), "--store", path, "--format", "markdown"])
    assert res.exit_code == 0 and "re-created" in res.output and "deleted in" in res.output
    res = runner.invoke(history_cmd, ["recNOPE", "--store", path])
    assert res.exit_code == 1 and res.output.strip() == "Error: record recNOPE is in no snapshot of this store"


def test_cli_bad_store(tmp_path):
    res = CliRunner().invoke(diff_cmd, ["--store", str(tmp_path / "none")])
    assert res.exit_code != 0 and res.output.startswith("Error: no store at")
    store = Store.open(tmp_path / "one", create=True)
    commit(store, initial_state())
    res = CliRunner().invoke(diff_cmd, ["--store", str(tmp_path / "one")])
    assert res.exit_code == 1 and res.output.startswith("Error: diff needs two snapshots; the store has 1")


def test_base_filter(world):
    store, s = world["store"], world["s"]
    full = diff_snapshots(store, s[1], s[2])
    by_name = diff_snapshots(store, s[1], s[2], bases=["sales"])
    assert full.to_dict() == by_name.to_dict()
    with pytest.raises(SelectionError, match="no base 'appNope' in snapshots"):
        diff_snapshots(store, s[1], s[2], bases=["appNope"])


def test_attachment_same_content_is_not_a_field_change(tmp_path):
    """Re-uploading the same file (new attachment id, same bytes) or Airtable adding thumbnails
    changes the record's hash but not its content: the record shows, no field change does."""
    store = Store.open(tmp_path / "s", create=True)
    st1 = initial_state()
    a = commit(store, st1)
    st2 = copy.deepcopy(st1)
    st2["tables"][T_DEALS][7]["fields"]["fldFiles"] = [_att("attAAAAAAAAAAAAA3", "b.txt")]  # same bytes as att2
    st2["tables"][T_DEALS][6]["fields"]["fldFiles"] = [
        _att("attAAAAAAAAAAAAA1", "a.txt", thumbnails={"small": {"url": "https://x", "width": 3, "height": 3}})]
    b = commit(store, st2)
    d = diff_snapshots(store, a, b, fields=True)
    (td,) = d.tables
    assert _ids(td, "changed") == [rid(6), rid(7)] and all(r.fields == [] for r in td.changed)
    assert "no visible field change" in render_text(d)


# ---- comments (issue 18): diff shows them per record, history gives each record's timeline


def _comment_store(tmp_path):
    import copy

    import fixtures_alltypes as F

    store, first = F.build(tmp_path / "cstore", hostile=False, extras=True)
    main = copy.deepcopy(F.COMMENTS[F.T_MAIN])
    r1 = main[F.R1]
    r1[:] = [c for c in r1 if c["id"] != "comAAAAAAAAAAAAA3"]  # the reply deleted
    r1[0] = dict(r1[0], text="Second, edited again", lastUpdatedTime="2024-06-01T00:00:00.000Z")
    r1.insert(0, {"id": "comAAAAAAAAAAAAA5", "author": F.USER2, "text": "A new one",
                  "createdTime": "2024-06-02T00:00:00.000Z", "lastUpdatedTime": None})
    snap = store.begin_snapshot(note="comments changed", command="test")
    snap.add_base(F.BASE, "All types", F.extras_schema())
    for tid, recs in ((F.T_MAIN, F.main_records()), (F.T_DIST, F.district_records())):
        tw = snap.table(F.BASE, tid)
        for r in recs:
            if tid == F.T_MAIN:
                r["fields"][F.F_LOWER] = f"lower {r['id'][-1]}"
            tw.add(r)
        tw.finish()
        snap.add_comments(F.BASE, tid, main if tid == F.T_MAIN else F.COMMENTS[F.T_DIST])
    second = snap.commit()
    return store, first, second, F


def test_diff_shows_comments_added_edited_deleted(tmp_path):
    from snapstore.commands.diff_render import render
    from snapstore.ops.diff import diff_snapshots

    store, a, b, F = _comment_store(tmp_path)
    d = diff_snapshots(store, a.id, b.id)
    assert not d.empty and d.totals["changed"] == 0 and d.totals["comments"] == 3
    (td,) = d.tables
    assert list(td.comments) == [F.R1]
    ch = td.comments[F.R1]
    assert [e["text"] for e in ch["added"]] == ["A new one"]
    assert [(e["old"], e["new"]) for e in ch["edited"]] == [("Second, edited", "Second, edited again")]
    assert [e["text"] for e in ch["deleted"]] == ["Reply: agreed"]
    text = render(d, "text")
    assert "comments +1 ~1 -1" in text and "+ comment W 2024-06-02T00:00:00.000Z: \"A new one\"" in text
    assert '~ comment Owner 2024-05-02T00:00:00.000Z: "Second, edited" → "Second, edited again"' in text
    assert '- comment W (reply) 2024-05-03T00:00:00.000Z: "Reply: agreed"' in text  # marked as history marks it
    assert "A new one" in render(d, "markdown")
    doc = json.loads(render(d, "json"))
    assert doc["tables"][0]["comment_counts"] == {"added": 1, "edited": 1, "deleted": 1}
    changes = doc["tables"][0]["comments"][F.R1]
    assert [e["parent"] for e in changes["deleted"]] == ["comAAAAAAAAAAAAA1"] and changes["added"][0]["parent"] is None
    # going back, the same changes the other way round
    back = diff_snapshots(store, b.id, a.id).tables[0].comments[F.R1]
    assert [e["text"] for e in back["added"]] == ["Reply: agreed"] and [e["text"] for e in back["deleted"]] == ["A new one"]


def test_history_shows_each_records_comment_timeline(tmp_path):
    from click.testing import CliRunner

    from snapstore.commands.history import history

    store, a, b, F = _comment_store(tmp_path)
    res = CliRunner().invoke(history, [F.R1, "--store", str(store.root), "--format", "json"])
    assert res.exit_code == 0, res.output
    tl = json.loads(res.output)["comments"]
    assert [e["texts"] for e in tl] == [["First\nwith a new line"], ["Second, edited", "Second, edited again"],
                                        ["Reply: agreed"], ["A new one"]]
    assert [e["deleted_in"] for e in tl] == [None, None, b.id, None]
    assert tl[2]["parent"] == "comAAAAAAAAAAAAA1" and tl[3]["first"] == b.id
    text = CliRunner().invoke(history, [F.R1, "--store", str(store.root)]).output
    assert "comments (4)" in text and '~ edited: "Second, edited again"' in text and f"deleted (gone in {b.id})" in text
