"""The emulator driven through pyairtable's public API: routes, listing, writes, errors."""

from __future__ import annotations

import re

import pytest
import requests
from pyairtable import Api
from pyairtable import formulas as F
from pyairtable.models.schema import FieldType, UnknownFieldSchema

from snapstore.emulator import Emulator, ManualClock, generate_workspace, route_uploads

ERR_403 = "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"


@pytest.fixture(scope="module")
def emu():
    ws = generate_workspace(seed=7, bases=2, tables_per_base=3, records_per_table=40, attachment_share=0.3,
                            link_share=0.5, comment_share=0.2)
    with Emulator(ws, clock=ManualClock(), rate_limits=False, tokens={"patLimited": []}) as e:
        yield e


@pytest.fixture()
def api(emu):
    return Api(emu.token, endpoint_url=emu.url, retry_strategy=None)


def _base(emu):
    return emu.workspace.bases[0]


def test_whoami_and_list_bases(emu, api):
    assert api.whoami()["id"].startswith("usr")
    bases = api.bases(force=True)
    assert [b.id for b in bases] == [b.id for b in emu.workspace.bases]
    assert all(b.permission_level == "create" for b in bases)


def test_schema_has_all_34_field_types_parsed_by_pyairtable(emu, api):
    base = api.base(_base(emu).id)
    schema = base.schema(force=True)
    types = {f.type for t in schema.tables for f in t.fields}
    assert types == {ft.value for ft in FieldType}
    assert len(types) == 34
    unknown = [(t.name, f.name, f.type) for t in schema.tables for f in t.fields if isinstance(f, UnknownFieldSchema)]
    assert unknown == []
    for t in schema.tables:
        assert t.primary_field_id == t.fields[0].id
        assert t.views and all(v.id.startswith("viw") for v in t.views)


def test_raw_schema_links_formulas_and_include(emu, api):
    b = _base(emu)
    raw = api.get(f"{emu.url}/v0/meta/bases/{b.id}/tables", params={"include": "visibleFieldIds"})
    tables = {t["id"]: t for t in raw["tables"]}
    for t in tables.values():
        assert re.fullmatch(r"tbl[0-9A-Za-z]{14}", t["id"])
        for f in t["fields"]:
            assert re.fullmatch(r"fld[0-9A-Za-z]{14}", f["id"])
            if f["type"] == "multipleRecordLinks":
                o = f["options"]
                if o["linkedTableId"] == t["id"]:
                    assert "inverseLinkFieldId" not in o  # the self-link
                else:
                    inv = next(x for x in tables[o["linkedTableId"]]["fields"] if x["id"] == o["inverseLinkFieldId"])
                    assert inv["options"]["inverseLinkFieldId"] == f["id"]
            if f["type"] == "formula":
                for ref in f["options"]["referencedFieldIds"]:
                    assert "{" + ref + "}" in f["options"]["formula"]
        assert "visibleFieldIds" in t["views"][0]
    assert any(f["options"].get("linkedTableId") == t["id"] for t in tables.values() for f in t["fields"]
               if f["type"] == "multipleRecordLinks")
    plain = api.get(f"{emu.url}/v0/meta/bases/{b.id}/tables")
    assert "visibleFieldIds" not in plain["tables"][0]["views"][0]


def test_cells_as_airtable_returns_them(emu, api):
    b = _base(emu)
    recs = api.table(b.id, b.tables[0].id).all()
    assert len(recs) == 40
    for r in recs:
        assert re.fullmatch(r"rec[0-9A-Za-z]{14}", r["id"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", r["createdTime"])
        for v in r["fields"].values():
            assert v is not False and v is not None and v != "" and v != []
    values = [v for r in recs for v in r["fields"].values()]
    assert {"error": "#ERROR!"} in values
    assert {"specialValue": "NaN"} in values
    assert any(isinstance(v, dict) and v.get("state") in ("generated", "error") for v in values)
    assert any(isinstance(v, dict) and "label" in v and "url" in v for v in values)
    assert any(isinstance(v, dict) and "text" in v for v in values)  # barcode


def test_empty_record_has_empty_fields(emu, api):
    b = _base(emu)
    base = api.base(b.id)
    table = base.create_table("Plain", [{"name": "Title", "type": "singleLineText"},
                                        {"name": "Flag", "type": "checkbox", "options": {"color": "greenBright",
                                                                                        "icon": "check"}}])
    rec = table.create({"Flag": False})
    assert rec["fields"] == {}
    assert table.get(rec["id"])["fields"] == {}


def test_1000_records_in_exactly_10_requests():
    ws = generate_workspace(seed=1, bases=1, tables_per_base=1, records_per_table=1000, attachment_share=0.0,
                            comment_share=0.0)
    with Emulator(ws, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        t = ws.bases[0].tables[0]
        emu.counters.reset()
        pages = list(api.table(ws.bases[0].id, t.id).iterate())
        assert [len(p) for p in pages] == [100] * 10
        assert len({r["id"] for p in pages for r in p}) == 1000
        snap = emu.counters.snapshot()
        assert snap["routes"]["list_records"]["requests"] == 10
        assert snap["bases"][ws.bases[0].id]["requests"] == 10
        assert snap["routes"]["list_records"]["bytes_sent"] > 0


def test_page_size_max_records_fields_sort_view_ids(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[0].name)
    pages = list(t.iterate(page_size=10, max_records=25))
    assert [len(p) for p in pages] == [10, 10, 5]
    recs = t.all(fields=["Name", "Quantity"], sort=["-Quantity", "Name"])
    assert all(set(r["fields"]) <= {"Name", "Quantity"} for r in recs)
    qs = [r["fields"].get("Quantity") for r in recs]
    assert [q for q in qs if q is not None] == sorted((q for q in qs if q is not None), reverse=True)
    assert qs[-1] is None or all(q is not None for q in qs)  # empties last when descending
    by_id = t.all(use_field_ids=True, max_records=3)
    assert all(k.startswith("fld") for r in by_id for k in r["fields"])
    assert [r["id"] for r in t.all(view="Grid view")] == [r["id"] for r in t.all()]
    with pytest.raises(requests.HTTPError) as ei:
        t.all(page_size=101)
    assert ei.value.response.status_code == 422
    with pytest.raises(requests.HTTPError) as ei:
        t.all(fields=["No such field"])
    assert ei.value.response.json()["error"]["type"] == "UNKNOWN_FIELD_NAME"
    counted = t.all(count_comments=True)
    assert all("commentCount" in r for r in counted) and any(r["commentCount"] > 0 for r in counted)
    raw = api.request("GET", t.urls.records, params={"returnFieldsByFieldId": "false", "maxRecords": 1})
    assert "Name" in raw["records"][0]["fields"]
    raw = api.request("GET", t.urls.records, params={"returnFieldsByFieldId": "true", "maxRecords": 1})
    assert all(k.startswith("fld") for k in raw["records"][0]["fields"])


def test_filter_by_formula_subset(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[0].id)
    everything = t.all()
    first = everything[0]
    assert [r["id"] for r in t.all(formula=F.match({"Name": first["fields"]["Name"]}))] == [first["id"]]
    assert [r["id"] for r in t.all(formula=F.EQ(F.RECORD_ID(), first["id"]))] == [first["id"]]
    done = t.all(formula=F.EQ(F.Field("Done"), True))
    assert {r["id"] for r in done} == {r["id"] for r in everything if r["fields"].get("Done")}
    big = t.all(formula=F.AND(F.GTE(F.Field("Quantity"), 50), F.NOT(F.EQ(F.Field("Status"), "Done"))))
    assert {r["id"] for r in big} == {r["id"] for r in everything if (r["fields"].get("Quantity") or 0) >= 50
                                      and r["fields"].get("Status") != "Done"}
    import datetime

    cut = datetime.datetime(2023, 6, 1)
    after = t.all(formula=F.IS_AFTER(F.CREATED_TIME(), cut))
    assert {r["id"] for r in after} == {r["id"] for r in everything if r["createdTime"] > "2023-06-01T00:00:00.000Z"}
    lm = t.all(formula=F.GT(F.LAST_MODIFIED_TIME(), datetime.datetime(2000, 1, 1)))
    assert len(lm) == len(everything)
    either = t.all(formula=F.OR(F.EQ(F.Field("Status"), "Todo"), F.EQ(F.Field("Status"), "Blocked")))
    assert {r["id"] for r in either} == {r["id"] for r in everything
                                         if r["fields"].get("Status") in ("Todo", "Blocked")}
    assert t.all(formula="{Quantity} + 1 - 1 >= 0 & ''") is not None
    with pytest.raises(requests.HTTPError) as ei:
        t.all(formula="AND({Name}, ")
    assert ei.value.response.json()["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    # field names with braces and quotes, as pyairtable escapes them
    table = api.base(b.id).create_table("Odd names", [{"name": "We}ird 'name'", "type": "singleLineText"}])
    table.create({"We}ird 'name'": "it's {here}"})
    assert len(table.all(formula=F.match({"We}ird 'name'": "it's {here}"}))) == 1


def test_long_query_falls_back_to_post_list_records_and_414(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[0].id)
    ids = [r["id"] for r in t.all()]
    long_formula = F.OR(*[F.EQ(F.RECORD_ID(), i) for i in ids[:5]], *[F.EQ(F.Field("Name"), "x" * 60)] * 300)
    emu.counters.reset()
    got = t.all(formula=long_formula, page_size=2)
    assert sorted(r["id"] for r in got) == sorted(ids[:5])
    assert emu.counters.snapshot()["routes"]["list_records"]["requests"] == 3
    resp = requests.get(f"{emu.url}/v0/{b.id}/{b.tables[0].id}", params={"filterByFormula": "x" * 16000},
                        headers={"Authorization": f"Bearer {emu.token}"})
    assert resp.status_code == 414


def test_iterator_expired_mid_listing(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[0].id)
    it = t.iterate(page_size=10)
    assert len(next(it)) == 10
    emu.expire_iterators()
    with pytest.raises(requests.HTTPError) as ei:
        next(it)
    assert ei.value.response.status_code == 422
    assert ei.value.response.json() == {"error": {"type": "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"}}
    # idle TTL on the clock
    it = t.iterate(page_size=10)
    next(it)
    emu.clock.advance(emu.iterator_ttl + 1)
    with pytest.raises(requests.HTTPError) as ei:
        next(it)
    assert ei.value.response.json()["error"]["type"] == "LIST_RECORDS_ITERATOR_NOT_AVAILABLE"
    # garbage offsets
    with pytest.raises(requests.HTTPError) as ei:
        t.all(offset="nonsense")
    assert ei.value.response.json()["error"]["type"] == "INVALID_OFFSET_VALUE"


def test_table_by_name_with_slash_and_spaces(emu, api):
    b = _base(emu)
    base = api.base(b.id)
    base.create_table("A/B table 'x'", [{"name": "Name", "type": "singleLineText"}])
    t = api.table(b.id, "A/B table 'x'")
    rec = t.create({"Name": "hello"})
    assert t.get(rec["id"])["fields"] == {"Name": "hello"}
    assert [r["id"] for r in t.all()] == [rec["id"]]


def test_create_update_replace_delete(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[1].id)
    rec = t.create({"Name": "New one", "Quantity": 3, "Notes": "n"})
    assert rec["fields"]["Name"] == "New one" and rec["fields"]["Quantity"] == 3
    assert rec["fields"]["Label"] == "New one #3"  # formula computed on write
    assert rec["fields"]["Created by"]["id"] == api.whoami()["id"]
    upd = t.update(rec["id"], {"Quantity": 4})
    assert upd["fields"]["Notes"] == "n" and upd["fields"]["Quantity"] == 4
    rep = t.update(rec["id"], {"Name": "Replaced"}, replace=True)
    assert "Notes" not in rep["fields"] and "Quantity" not in rep["fields"]
    many = t.batch_create([{"Name": f"b{i}"} for i in range(12)])
    assert len(many) == 12
    ups = t.batch_update([{"id": r["id"], "fields": {"Quantity": 9}} for r in many])
    assert all(r["fields"]["Quantity"] == 9 for r in ups)
    assert t.delete(rec["id"]) == {"id": rec["id"], "deleted": True}
    deleted = t.batch_delete([r["id"] for r in many])
    assert all(d["deleted"] for d in deleted) and len(deleted) == 12
    with pytest.raises(requests.HTTPError) as ei:
        t.get(rec["id"])
    assert ei.value.response.status_code == 404
    assert ei.value.response.json() == {"error": {"type": "MODEL_ID_NOT_FOUND", "message": "Record not found"}}


def test_links_are_two_sided(emu, api):
    b = _base(emu)
    t0, t1 = b.tables[0], b.tables[1]
    link = next(f for f in t0.fields if f["type"] == "multipleRecordLinks" and f["options"]["linkedTableId"] == t1.id)
    inv = link["options"]["inverseLinkFieldId"]
    target = next(iter(t1.records))
    rec = api.table(b.id, t0.id).create({link["id"]: [target]}, use_field_ids=True)
    other = api.table(b.id, t1.id).get(target, use_field_ids=True)
    assert rec["id"] in other["fields"][inv]
    api.table(b.id, t0.id).delete(rec["id"])
    other = api.table(b.id, t1.id).get(target, use_field_ids=True)
    assert rec["id"] not in other["fields"].get(inv, [])


def test_ten_record_write_limit(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[1].id)
    with pytest.raises(requests.HTTPError) as ei:
        api.request("POST", t.urls.records, json={"records": [{"fields": {"Name": str(i)}} for i in range(11)]})
    assert ei.value.response.status_code == 422
    err = ei.value.response.json()["error"]
    assert err["type"] == "INVALID_RECORDS" and "11" in err["message"]
    with pytest.raises(requests.HTTPError) as ei:
        api.request("PATCH", t.urls.records, json={"records": [{"id": "recXXXXXXXXXXXXXX", "fields": {}}] * 11})
    assert ei.value.response.status_code == 422
    with pytest.raises(requests.HTTPError) as ei:
        api.request("DELETE", t.urls.records, params={"records[]": ["recXXXXXXXXXXXXXX"] * 11})
    assert ei.value.response.status_code == 422


def test_typecast_creates_select_options(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[1].id)
    with pytest.raises(requests.HTTPError) as ei:
        t.create({"Status": "Brand new"})
    assert ei.value.response.json()["error"]["type"] == "INVALID_MULTIPLE_CHOICE_OPTIONS"
    rec = t.create({"Status": "Brand new", "Tags": "x1, x2", "Quantity": "12"}, typecast=True)
    assert rec["fields"]["Status"] == "Brand new" and rec["fields"]["Tags"] == ["x1", "x2"]
    assert rec["fields"]["Quantity"] == 12
    schema = t.schema(force=True)
    names = [c.name for c in schema.field("Status").options.choices]
    assert "Brand new" in names
    assert all(c.id.startswith("sel") for c in schema.field("Status").options.choices)


def test_writes_to_computed_fields_are_rejected(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[1].id)
    for name in ("Label", "Created", "ID", "Open"):
        with pytest.raises(requests.HTTPError) as ei:
            t.create({"Name": "x", name: "nope"})
        assert ei.value.response.status_code == 422
        assert ei.value.response.json()["error"]["type"] == "INVALID_VALUE_FOR_COLUMN"
    with pytest.raises(requests.HTTPError) as ei:
        t.create({"No such": 1})
    assert ei.value.response.json()["error"]["type"] == "UNKNOWN_FIELD_NAME"


def test_upsert_shape(emu, api):
    b = _base(emu)
    t = api.table(b.id, b.tables[2].id)
    existing = t.create({"Name": "upsert-me", "Quantity": 1})
    res = t.batch_upsert([{"fields": {"Name": "upsert-me", "Quantity": 2}},
                          {"fields": {"Name": "brand-new", "Quantity": 3}}], key_fields=["Name"])
    assert set(res) == {"createdRecords", "updatedRecords", "records"}
    assert res["updatedRecords"] == [existing["id"]]
    assert len(res["createdRecords"]) == 1 and res["createdRecords"][0] != existing["id"]
    assert [r["fields"]["Quantity"] for r in res["records"]] == [2, 3]
    res2 = t.batch_upsert([{"id": existing["id"], "fields": {"Quantity": 5}}], key_fields=["Name"])
    assert res2["updatedRecords"] == [existing["id"]] and res2["createdRecords"] == []


def test_comments_paging_and_create(emu, api):
    b = _base(emu)
    tbl = b.tables[0]
    rec_id = list(tbl.records)[-1]
    t = api.table(b.id, tbl.id)
    first = t.add_comment(rec_id, "first")
    reply = t.add_comment(rec_id, f"@[{emu.workspace.users[1]['id']}] reply", parent_comment_id=first.id)
    assert reply.parent_comment_id == first.id and reply.mentioned
    for i in range(148):
        t.add_comment(rec_id, f"c{i}")
    emu.counters.reset()
    comments = t.comments(rec_id)
    assert len(comments) >= 150
    assert comments[0].text == "c147"  # newest first
    assert emu.counters.snapshot()["routes"]["list_comments"]["requests"] == 2
    page = api.request("GET", t.urls.record(rec_id) + "/comments")
    assert page["offset"] is not None and len(page["comments"]) == 100
    last = api.request("GET", t.urls.record(rec_id) + "/comments", params={"offset": page["offset"]})
    assert last["offset"] is None
    comments[0].text = "edited"
    comments[0].save()
    assert t.comments(rec_id)[0].text == "edited"
    comments[0].delete()
    assert len(t.comments(rec_id)) == len(comments) - 1
    assert t.get(rec_id, count_comments=True) is not None


def test_upload_attachment_through_pyairtable(emu, api):
    route_uploads(api, emu.url)
    b = _base(emu)
    tbl = b.tables[0]
    rec_id = list(tbl.records)[0]
    t = api.table(b.id, tbl.id)
    files_field = tbl.field("Files")
    before = len(tbl.records[rec_id].cells.get(files_field["id"], []))
    content = b"hello attachment\n" * 500
    res = t.upload_attachment(rec_id, "Files", "hello.txt", content=content, content_type="text/plain")
    cell = res["fields"][files_field["id"]]
    assert len(cell) == before + 1
    new = cell[-1]
    assert new["id"].startswith("att") and new["filename"] == "hello.txt" and new["size"] == len(content)
    got = requests.get(new["url"])
    assert got.status_code == 200 and got.content == content
    assert got.headers["Content-Type"] == "text/plain"
    with pytest.raises(requests.HTTPError) as ei:
        t.upload_attachment(rec_id, "Files", "big.bin", content=b"\0" * (5 * 1024 * 1024 + 1))
    assert ei.value.response.status_code == 413
    with pytest.raises(requests.HTTPError) as ei:
        t.upload_attachment(rec_id, "Name", "x.txt", content=b"x")
    assert ei.value.response.status_code == 422


def test_attachment_urls_are_signed_change_and_expire(emu, api):
    b = _base(emu)
    tbl = b.tables[0]
    fid = tbl.field("Files")["id"]
    rec_id = next(r.id for r in tbl.records.values()
                  if any(a["type"] == "image/png" for a in r.cells.get(fid, [])))
    t = api.table(b.id, tbl.id)
    a1 = next(a for a in t.get(rec_id)["fields"]["Files"] if a["type"] == "image/png")
    a2 = next(a for a in t.get(rec_id)["fields"]["Files"] if a["type"] == "image/png")
    assert a1["id"] == a2["id"] and a1["url"] != a2["url"]
    resp = requests.get(a1["url"])
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "image/png"
    assert int(resp.headers["Content-Length"]) == a1["size"] == len(resp.content)
    import struct

    assert resp.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", resp.content[16:24]) == (a1["width"], a1["height"])
    assert set(a1["thumbnails"]) == {"small", "large", "full"}
    small = requests.get(a1["thumbnails"]["small"]["url"])
    assert small.status_code == 200
    assert struct.unpack(">II", small.content[16:24]) == (a1["thumbnails"]["small"]["width"],
                                                         a1["thumbnails"]["small"]["height"])
    emu.clock.advance(emu.attachment_ttl)
    gone = requests.get(a1["url"])
    assert gone.status_code == 410 and gone.text == "This URL has expired"
    fresh = next(a for a in t.get(rec_id)["fields"]["Files"] if a["id"] == a1["id"])
    assert requests.get(fresh["url"]).status_code == 200
    assert requests.get(a1["url"].replace("/__content/", "/__content/x")).status_code == 404


def test_field_rename_shows_by_name_not_by_id(emu, api):
    b = _base(emu)
    tbl = b.tables[2]
    t = api.table(b.id, tbl.id)
    fid = tbl.field("Email")["id"]
    before_by_id = t.all(use_field_ids=True)
    field = t.schema(force=True).field("Email")
    field.name = "E-mail address"
    field.save()
    schema = t.schema(force=True)
    assert schema.field(fid).name == "E-mail address"
    recs = t.all()
    assert any("E-mail address" in r["fields"] for r in recs) and not any("Email" in r["fields"] for r in recs)
    after_by_id = t.all(use_field_ids=True)
    assert [(r["id"], sorted(r["fields"])) for r in after_by_id] == [(r["id"], sorted(r["fields"]))
                                                                     for r in before_by_id]
    assert [r["fields"].get(fid) for r in after_by_id] == [r["fields"].get(fid) for r in before_by_id]
    with pytest.raises(requests.HTTPError):
        t.all(fields=["Email"])
    assert t.all(fields=["E-mail address"])


def test_schema_writes(emu, api):
    b = _base(emu)
    base = api.base(b.id)
    new = base.create_table("Apartments", [
        {"name": "Name", "type": "singleLineText", "description": "Name of the apartment"},
        {"name": "Address", "type": "singleLineText"},
        {"name": "Visited", "type": "checkbox", "options": {"color": "greenBright", "icon": "check"}}],
        description="A to-do list of places to visit")
    assert new.id.startswith("tbl")
    f = new.create_field("Where", "multipleRecordLinks", options={"linkedTableId": b.tables[0].id})
    inv_id = f.options.inverse_link_field_id
    assert any(x["id"] == inv_id for x in b.tables[0].fields)
    with pytest.raises(requests.HTTPError) as ei:
        new.create_field("Calc", "formula", options={"formula": "1"})
    assert ei.value.response.status_code == 422
    with pytest.raises(requests.HTTPError) as ei:
        base.create_table("apartments", [{"name": "Name", "type": "singleLineText"}])
    assert ei.value.response.status_code == 422
    ts = new.schema(force=True)
    ts.name = "Flats"
    ts.save()
    assert api.base(b.id).table("Flats").schema(force=True).id == new.id
    created = api.create_base(emu.workspace.workspace_id, "Fresh base",
                              [{"name": "T", "fields": [{"name": "Name", "type": "singleLineText"}]}])
    assert created.id in [x.id for x in api.bases(force=True)]
    assert api.base(created.id).webhooks() == []


def test_errors_401_403_404(emu, api):
    b = _base(emu)
    bad = Api("patNOPE", endpoint_url=emu.url, retry_strategy=None)
    with pytest.raises(requests.HTTPError) as ei:
        bad.whoami()
    assert ei.value.response.status_code == 401
    assert ei.value.response.json() == {"error": {"type": "AUTHENTICATION_REQUIRED",
                                                  "message": "Authentication required"}}
    limited = Api("patLimited", endpoint_url=emu.url, retry_strategy=None)
    assert limited.bases(force=True) == []
    with pytest.raises(requests.HTTPError) as ei:
        limited.table(b.id, b.tables[0].id).all()
    assert ei.value.response.status_code == 403
    assert ei.value.response.json()["error"]["type"] == ERR_403
    for url in (f"/v0/appXXXXXXXXXXXXXX/{b.tables[0].id}", f"/v0/{b.id}/tblNOPENOPENOPE12"):
        with pytest.raises(requests.HTTPError) as ei:
            api.request("GET", emu.url + url)
        assert ei.value.response.status_code == 403 and ei.value.response.json()["error"]["type"] == ERR_403
    resp = requests.get(f"{emu.url}/v0/nothing/here/at/all/really", headers={"Authorization": f"Bearer {emu.token}"})
    assert resp.status_code == 404 and resp.json() == {"error": "NOT_FOUND"}


def test_restricted_token_sees_only_its_bases():
    ws = generate_workspace(seed=3, bases=2, tables_per_base=1, records_per_table=5)
    a, b = ws.bases
    with Emulator(ws, tokens={"patA": [a.id]}, rate_limits=False) as emu:
        api = Api("patA", endpoint_url=emu.url, retry_strategy=None)
        assert [x.id for x in api.bases()] == [a.id]
        assert len(api.table(a.id, a.tables[0].id).all()) == 5
        with pytest.raises(requests.HTTPError) as ei:
            api.base(b.id).schema()
        assert ei.value.response.status_code == 403
