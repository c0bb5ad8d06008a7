"""The emulator's webhooks (reference airtable-webhooks.md): routes and their errors, cursor semantics,
expiry and retention on a Manual clock, scopes, the payloads every write path makes, the computed-changes
switch, error injection, and pyairtable's own models parsing every response."""

from __future__ import annotations

import pyairtable
import pytest
import requests
from pyairtable.models import WebhookPayload

from snapstore.emulator import Emulator, ManualClock, generate_workspace

DAY = 86400
ALL = ["tableData", "tableFields", "tableMetadata"]
T0 = 1_700_000_000.0


@pytest.fixture
def emu():
    ws = generate_workspace(seed=5, bases=1, tables_per_base=3, records_per_table=10)
    with Emulator(ws, clock=ManualClock(T0), rate_limits=False) as e:
        yield e


class Client:
    """Raw HTTP against one base's webhook routes (status and JSON), plus pyairtable handles."""

    def __init__(self, emu: Emulator, token: str | None = None) -> None:
        self.emu, self.token = emu, token or emu.token
        self.base_id = emu.workspace.bases[0].id
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {self.token}"
        self.api = pyairtable.Api(self.token, endpoint_url=emu.url)
        self.base = self.api.base(self.base_id)

    def url(self, tail: str = "") -> str:
        return f"{self.emu.url}/v0/bases/{self.base_id}/webhooks{tail}"

    def call(self, method: str, tail: str = "", **kw) -> tuple[int, dict]:
        r = self.s.request(method, self.url(tail), **kw)
        return r.status_code, r.json()

    def create(self, types=ALL, **options) -> str:
        spec = {"options": {"filters": {"dataTypes": list(types)}, **options}}
        st, body = self.call("POST", json={"specification": spec})
        assert st == 200, body
        return body["id"]

    def payloads(self, hook_id: str, cursor: int = 1, limit: int | None = None) -> dict:
        params = {"cursor": cursor} if limit is None else {"cursor": cursor, "limit": limit}
        st, body = self.call("GET", f"/{hook_id}/payloads", params=params)
        assert st == 200, body
        return body

    def all_payloads(self, hook_id: str, cursor: int = 1) -> list[dict]:
        out = []
        while True:
            page = self.payloads(hook_id, cursor)
            out += page["payloads"]
            cursor = page["cursor"]
            if not page["mightHaveMore"]:
                return out

    def parsed(self, hook_id: str) -> list[WebhookPayload]:
        return list(self.base.webhook(hook_id).payloads())


def tables(emu):
    projects, tasks, clients = emu.workspace.bases[0].tables
    return projects, tasks, clients


def fid(table, name):
    return table.fields_by_name[name]["id"]


def first_project(c: Client):
    """The Projects table, its pyairtable Table and the id of its first record."""
    projects = tables(c.emu)[0]
    return projects, c.api.table(c.base_id, projects.id), next(iter(projects.records))


PREV = {"includes": {"includePreviousCellValues": True, "includePreviousFieldDefinitions": True}}


# ------------------------------------------------------------------------------------------ routes


def test_create_list_refresh_notifications_delete_parse_with_pyairtable(emu):
    c = Client(emu)
    created = c.base.add_webhook(None, {"options": {"filters": {"dataTypes": ALL}}})
    assert created.id.startswith("ach") and len(created.id) == 17
    assert created.mac_secret_base64 and created.expiration_time.timestamp() == T0 + 7 * DAY
    [hook] = c.base.webhooks()
    assert (hook.id, hook.cursor_for_next_payload, hook.is_hook_enabled) == (created.id, 1, True)
    assert hook.notification_url is None and hook.are_notifications_enabled is False
    assert hook.specification.options.filters.data_types == ALL
    emu.clock.advance(DAY)
    hook.extend_expiration()
    assert c.base.webhooks()[0].expiration_time.timestamp() == T0 + 8 * DAY
    hook.enable_notifications()
    assert c.base.webhooks()[0].are_notifications_enabled is True
    hook.disable_notifications()
    assert c.base.webhooks()[0].are_notifications_enabled is False
    assert c.call("POST", f"/{hook.id}/enableNotifications", json={"enable": "yes"})[0] == 422
    hook.delete()
    assert c.base.webhooks() == []
    for method, tail in (("DELETE", ""), ("POST", "/refresh"), ("GET", "/payloads")):
        assert c.call(method, f"/{hook.id}{tail}")[0] == 404


def test_bad_specifications_and_the_eleventh_hook(emu):
    c = Client(emu)
    for spec in ({}, {"options": {}}, {"options": {"filters": {"dataTypes": []}}},
                 {"options": {"filters": {"dataTypes": ["tableRows"]}}}):
        st, body = c.call("POST", json={"specification": spec})
        assert st == 422, spec
    for _ in range(10):
        c.create()
    st, body = c.call("POST", json={"specification": {"options": {"filters": {"dataTypes": ALL}}}})
    assert st == 422 and "limited to 10" in body["error"]["message"]
    assert len(c.base.webhooks()) == 10


def test_403_without_webhook_manage_or_the_read_scopes(emu):
    owner = Client(emu)
    hook = owner.create()
    emu.add_token("patNOHOOKS.x", scopes=["data.records:read", "schema.bases:read"])
    c = Client(emu, "patNOHOOKS.x")
    assert "webhook:manage" not in c.api.whoami()["scopes"]
    for method, tail, body in (("GET", "", None), ("POST", "", {"specification": {"options": {"filters": {
            "dataTypes": ALL}}}}), ("GET", f"/{hook}/payloads", None), ("POST", f"/{hook}/refresh", None),
            ("DELETE", f"/{hook}", None), ("POST", f"/{hook}/enableNotifications", {"enable": True})):
        st, out = c.call(method, tail, json=body)
        assert st == 403 and out["error"]["type"] == "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", (method, tail)
    assert c.api.table(c.base_id, tables(emu)[0].id).first() is not None  # the token still reads records
    emu.add_token("patNODATA.x", scopes=["webhook:manage", "schema.bases:read"])
    d = Client(emu, "patNODATA.x")
    assert d.call("POST", json={"specification": {"options": {"filters": {"dataTypes": ["tableData"]}}}})[0] == 403
    assert d.call("POST", json={"specification": {"options": {"filters": {"dataTypes": ["tableFields"]}}}})[0] == 200
    emu.workspace.bases[0].permission_level = "edit"  # creating and refreshing need the creator role
    assert owner.call("POST", f"/{hook}/refresh")[0] == 403
    assert owner.call("GET", f"/{hook}/payloads")[0] == 200


# ------------------------------------------------------------------------------------------ cursor


def test_cursor_order_limit_might_have_more_and_old_cursors(emu):
    c = Client(emu)
    hook = c.create()
    projects, t, rid = first_project(c)
    for i in range(5):
        t.update(rid, {"Name": f"name {i}"})
    assert c.base.webhooks()[0].cursor_for_next_payload == 6
    page = c.payloads(hook, 1, limit=2)
    assert len(page["payloads"]) == 2 and page["cursor"] == 3 and page["mightHaveMore"] is True
    again = c.payloads(hook, 3)
    assert again == c.payloads(hook, 3)  # an old cursor gives the same payloads again
    assert again["cursor"] == 6 and again["mightHaveMore"] is False
    every = c.all_payloads(hook)
    numbers = [p["baseTransactionNumber"] for p in every]
    assert numbers == sorted(numbers) and len(set(numbers)) == 5  # one payload per API call, in order
    names = [p["changedTablesById"][projects.id]["changedRecordsById"][rid]["current"]["cellValuesByFieldId"]
             [fid(projects, "Name")] for p in every]
    assert names == [f"name {i}" for i in range(5)]
    assert c.payloads(hook, 6) == {"payloads": [], "cursor": 6, "mightHaveMore": False}
    assert c.payloads(hook, 99) == {"payloads": [], "cursor": 99, "mightHaveMore": False}
    for params in ({"cursor": 0}, {"cursor": "x"}, {"limit": 51}, {"limit": 0}):
        assert c.call("GET", f"/{hook}/payloads", params=params)[0] == 422, params
    parsed = c.parsed(hook)
    assert [p.cursor for p in parsed] == [1, 2, 3, 4, 5]
    assert [p.base_transaction_number for p in parsed] == numbers


def test_hook_expires_after_seven_days_unless_read_then_disabled_then_gone(emu):
    c = Client(emu)
    hook = c.create()
    t = c.api.table(c.base_id, tables(emu)[0].id)
    rid = next(iter(tables(emu)[0].records))
    emu.clock.advance(6 * DAY)
    c.payloads(hook)  # reading extends the hook to 7 days from the read
    assert c.base.webhooks()[0].expiration_time.timestamp() == T0 + 13 * DAY
    emu.clock.advance(6.5 * DAY)
    t.update(rid, {"Name": "before expiry"})
    assert c.base.webhooks()[0].is_hook_enabled is True
    emu.clock.advance(1 * DAY)
    [h] = c.base.webhooks()
    assert h.is_hook_enabled is False
    t.update(rid, {"Name": "after expiry"})  # a disabled hook records nothing
    assert h.cursor_for_next_payload == 2 and c.base.webhooks()[0].cursor_for_next_payload == 2
    st, body = c.call("POST", f"/{hook}/refresh")
    assert st == 422
    assert len(c.payloads(hook)["payloads"]) == 1  # past payloads stay readable...
    assert c.base.webhooks()[0].expiration_time.timestamp() == T0 + 13 * DAY  # ...without reviving it
    emu.clock.advance(7 * DAY)
    assert c.base.webhooks() == [] and c.call("GET", f"/{hook}/payloads")[0] == 404


def test_payloads_are_deleted_seven_days_after_they_were_made(emu):
    c = Client(emu)
    hook = c.create()
    projects, t, rid = first_project(c)
    t.update(rid, {"Name": "first"})
    emu.clock.advance(3 * DAY)
    t.update(rid, {"Name": "second"})
    assert len(c.payloads(hook)["payloads"]) == 2
    emu.clock.advance(4.5 * DAY)
    page = c.payloads(hook, 1)
    assert len(page["payloads"]) == 1 and page["cursor"] == 3  # payload 1 is gone: the cursor jumps
    changed = page["payloads"][0]["changedTablesById"][projects.id]["changedRecordsById"][rid]
    assert changed["current"]["cellValuesByFieldId"][fid(projects, "Name")] == "second"
    assert c.base.webhooks()[0].cursor_for_next_payload == 3  # never reset


# ------------------------------------------------------------------------------------------ write paths


def test_record_create_update_upsert_delete_payloads(emu):
    c = Client(emu)
    plain, prev = c.create(), c.create(**PREV)
    projects = tables(emu)[0]
    t = c.api.table(c.base_id, projects.id)
    name, score = fid(projects, "Name"), fid(projects, "Score")
    new = t.create({"Name": "fresh", "Score": 3})
    t.update(new["id"], {"Score": 4})
    t.batch_upsert([{"fields": {"Name": "fresh", "Score": 5}}, {"fields": {"Name": "other", "Score": 1}}],
                   key_fields=["Name"])
    t.delete(new["id"])
    p = c.all_payloads(prev)
    created = p[0]["changedTablesById"][projects.id]["createdRecordsById"][new["id"]]
    assert created["createdTime"] == new["createdTime"]
    assert created["cellValuesByFieldId"][name] == "fresh" and created["cellValuesByFieldId"][score] == 3
    changed = p[1]["changedTablesById"][projects.id]["changedRecordsById"][new["id"]]
    assert changed["current"]["cellValuesByFieldId"][score] == 4
    assert changed["previous"]["cellValuesByFieldId"][score] == 3
    assert name not in changed["current"]["cellValuesByFieldId"]  # only what changed
    assert set(changed["previous"]["cellValuesByFieldId"]) == set(changed["current"]["cellValuesByFieldId"])
    upsert = p[2]["changedTablesById"][projects.id]
    assert list(upsert["changedRecordsById"]) == [new["id"]] and len(upsert["createdRecordsById"]) == 1
    assert p[3]["changedTablesById"][projects.id]["destroyedRecordIds"] == [new["id"]]
    without = c.all_payloads(plain)
    assert "previous" not in without[1]["changedTablesById"][projects.id]["changedRecordsById"][new["id"]]
    assert all(p["actionMetadata"]["source"] == "publicApi" for p in without)


def _served_file(emu) -> str:
    """A URL the emulator can download (its own signed URL of a stored file: loopback)."""
    att_id, info = next(iter(emu.workspace.attachments.items()))
    return emu.content_url(att_id, "full", info["filename"])


def test_cells_use_the_webhook_shapes(emu):
    c = Client(emu)
    hook = c.create()
    projects, tasks, _ = tables(emu)
    t = c.api.table(c.base_id, projects.id)
    task_id = next(iter(tasks.records))
    task_name = tasks.records[task_id].cells[tasks.primary_field_id]
    status = projects.fields_by_name["Status"]["options"]["choices"][0]
    tags = projects.fields_by_name["Tags"]["options"]["choices"][:2]
    new = t.create({"Name": "shapes", "Status": status["name"], "Tags": [x["name"] for x in tags],
                    "Tasks": [task_id], "Files": [{"url": _served_file(emu), "filename": "a.txt"}]})
    cells = c.all_payloads(hook)[0]["changedTablesById"][projects.id]["createdRecordsById"][new["id"]][
        "cellValuesByFieldId"]
    assert cells[fid(projects, "Status")] == {"id": status["id"], "name": status["name"], "color": status["color"]}
    assert cells[fid(projects, "Tags")] == [{"id": x["id"], "name": x["name"], "color": x["color"]} for x in tags]
    assert cells[fid(projects, "Tasks")] == [{"id": task_id, "name": task_name}]
    [att] = cells[fid(projects, "Files")]
    assert att["filename"] == "a.txt" and att["id"].startswith("att") and "url" not in att


def test_link_edit_reports_both_sides_with_previous_links(emu):
    c = Client(emu)
    hook = c.create(**PREV)
    projects, tasks, _ = tables(emu)
    link, inverse = fid(projects, "Tasks"), fid(tasks, "Projects")
    rid = next(r.id for r in projects.records.values() if r.cells.get(link))
    old_tasks = list(projects.records[rid].cells[link])
    new_task = next(t for t in tasks.records if t not in old_tasks)
    c.api.table(c.base_id, projects.id).update(rid, {"Tasks": [new_task]})
    [p] = c.all_payloads(hook)
    mine = p["changedTablesById"][projects.id]["changedRecordsById"][rid]
    assert [x["id"] for x in mine["previous"]["cellValuesByFieldId"][link]] == old_tasks
    assert [x["id"] for x in mine["current"]["cellValuesByFieldId"][link]] == [new_task]
    others = p["changedTablesById"][tasks.id]["changedRecordsById"]
    assert set(others) == set(old_tasks) | {new_task}  # the inverse link cells changed on both sides
    assert rid in [x["id"] for x in others[new_task]["current"]["cellValuesByFieldId"][inverse]]
    for t in old_tasks:
        assert rid in [x["id"] for x in others[t]["previous"]["cellValuesByFieldId"][inverse]]
        assert rid not in [x["id"] for x in others[t]["current"]["cellValuesByFieldId"].get(inverse) or []]


@pytest.mark.parametrize("report", [False, True])
def test_computed_changes_in_other_records_follow_the_switch(emu, report):
    c = Client(emu)
    hook = c.create()
    if report:  # the admin endpoint flips emu.webhooks.report_computed
        r = requests.post(f"{emu.url}/__admin/webhooks/report-computed", json={"value": True})
        assert r.json() == {"value": True}
    assert emu.webhooks.report_computed is report
    projects, tasks, _ = tables(emu)
    lookup = fid(projects, "Tasks names")
    task = next(r for r in tasks.records.values() if r.cells.get(fid(tasks, "Projects")))
    linked_projects = set(task.cells[fid(tasks, "Projects")])
    c.api.table(c.base_id, tasks.id).update(task.id, {"Name": "renamed task"})
    for pid in linked_projects:  # the emulator itself keeps lookups current either way
        assert "renamed task" in projects.records[pid].cells[lookup]
    [p] = c.all_payloads(hook)
    assert list(p["changedTablesById"][tasks.id]["changedRecordsById"]) == [task.id]
    knock_on = p["changedTablesById"].get(projects.id, {}).get("changedRecordsById", {})
    if report:
        assert set(knock_on) == linked_projects
        assert all("renamed task" in knock_on[pid]["current"]["cellValuesByFieldId"][lookup]
                   for pid in linked_projects)
    else:
        assert knock_on == {}


def test_schema_routes_make_field_and_table_payloads(emu):
    c = Client(emu)
    hook = c.create(**PREV)
    fields_only = c.create(types=["tableFields"])
    projects = tables(emu)[0]
    tschema = c.base.table(projects.id).schema()
    f = c.base.table(projects.id).create_field("Extra", "number", options={"precision": 2})
    fs = c.base.table(projects.id).schema(force=True).field(f.id)
    fs.name = "Extra renamed"
    fs.save()
    tschema.name = "Projects renamed"
    tschema.save()
    new_table = c.base.create_table("Fresh", [{"name": "Title", "type": "singleLineText"}])
    p = c.all_payloads(hook)
    assert p[0]["changedTablesById"][projects.id]["createdFieldsById"] == {f.id: {"name": "Extra", "type": "number"}}
    assert p[1]["changedTablesById"][projects.id]["changedFieldsById"] == {
        f.id: {"current": {"name": "Extra renamed"}, "previous": {"name": "Extra"}}}
    desc = projects.schema["description"]
    assert p[2]["changedTablesById"][projects.id]["changedMetadata"] == {
        "current": {"name": "Projects renamed", "description": desc}, "previous": {"name": "Projects",
                                                                              "description": desc}}
    created = p[3]["createdTablesById"][new_table.id]
    assert created["metadata"] == {"name": "Fresh"}
    assert list(created["fieldsById"].values()) == [{"name": "Title", "type": "singleLineText"}]
    assert created["recordsById"] == {}
    only = c.all_payloads(fields_only)  # created and renamed field, created table: no table metadata change
    assert [sorted(x.get("changedTablesById", {}).get(projects.id, {})) for x in only] == [
        ["createdFieldsById"], ["changedFieldsById"], []]
    assert list(only[2]["createdTablesById"][new_table.id]) == ["metadata", "fieldsById"]
    parsed = c.parsed(hook)
    assert parsed[1].changed_tables_by_id[projects.id].changed_fields_by_id[f.id].previous.name == "Extra"
    assert parsed[2].changed_tables_by_id[projects.id].changed_metadata.previous.name == "Projects"


def test_ui_only_schema_changes_through_admin_and_python(emu):
    c = Client(emu)
    hook = c.create(**PREV)
    projects, tasks, clients = tables(emu)
    bid = c.base_id
    admin = f"{emu.url}/__admin/schema"
    # delete a link field: its inverse goes too, in the other table
    link, inverse = fid(projects, "Clients"), fid(clients, "Projects")
    r = requests.post(f"{admin}/delete-field", json={"base": bid, "table": projects.id, "field": link})
    assert r.status_code == 200 and set(r.json()["deleted"]) == {link, inverse}
    # change a type: every converted cell is a changed record
    score = fid(tasks, "Score")
    assert tasks.fields_by_id[score]["options"] == {"precision": 2}
    with_score = {r.id: r.cells[score] for r in tasks.records.values() if score in r.cells}
    emu.change_field_type(bid, tasks.id, score, "singleLineText")
    # delete a table
    r = requests.post(f"{admin}/delete-table", json={"base": bid, "table": clients.id})
    assert r.status_code == 200
    p = c.all_payloads(hook)
    assert p[0]["changedTablesById"][projects.id]["destroyedFieldIds"] == [link]
    assert p[0]["changedTablesById"][clients.id]["destroyedFieldIds"] == [inverse]
    retyped = p[1]["changedTablesById"][tasks.id]
    assert retyped["changedFieldsById"][score] == {"current": {"type": "singleLineText"},
                                                   "previous": {"type": "number", "options": {"precision": 2}}}
    converted = {rid: v["current"]["cellValuesByFieldId"][score] for rid, v in retyped["changedRecordsById"].items()}
    assert set(converted) == set(with_score)
    assert all(isinstance(v, str) and float(v) == with_score[rid] for rid, v in converted.items())
    assert p[2]["destroyedTableIds"] == [clients.id]
    assert clients.id not in p[2].get("changedTablesById", {})
    assert all(isinstance(x, WebhookPayload) for x in c.parsed(hook))
    r = requests.post(f"{admin}/delete-field", json={"base": bid, "table": projects.id,
                                                     "field": projects.primary_field_id})
    assert r.status_code == 422


def test_churn_reports_every_change_in_one_transaction(emu):
    c = Client(emu)
    hook = c.create()
    report = emu.churn(seed=3, edit_share=0.3, add_share=0.2, delete_share=0.2, link_edits=4, rename_fields=1,
                       add_fields=1, change_types=1, delete_fields=1, add_tables=1, rename_tables=1)
    p = c.all_payloads(hook)
    assert len({x["baseTransactionNumber"] for x in p}) == 1 and p[0]["actionMetadata"]["source"] == "client"
    seen: dict[str, dict[str, set]] = {}
    for x in p:
        for tid, e in x.get("changedTablesById", {}).items():
            s = seen.setdefault(tid, {"changed": set(), "created": set(), "destroyed": set(), "fields": set(),
                                      "new_fields": set(), "gone_fields": set()})
            s["changed"] |= set(e.get("changedRecordsById", {}))
            s["created"] |= set(e.get("createdRecordsById", {}))
            s["destroyed"] |= set(e.get("destroyedRecordIds", []))
            s["fields"] |= set(e.get("changedFieldsById", {}))
            s["new_fields"] |= set(e.get("createdFieldsById", {}))
            s["gone_fields"] |= set(e.get("destroyedFieldIds", []))
    created_tables = {t for x in p for t in x.get("createdTablesById", {})}
    for tid, e in report["tables"].items():
        if e["created"]:
            assert tid in created_tables
            continue
        s = seen[tid]
        assert set(e["deleted"]) <= s["destroyed"]
        assert set(e["added"]) - set(e["deleted"]) <= s["created"]
        assert set(e["edited"]) - set(e["deleted"]) <= s["changed"] | s["created"]
        assert {x["record"] for x in e["linked"]} - set(e["deleted"]) <= s["changed"] | s["created"]
        assert {x["id"] for x in e["renamed_fields"] + e["retyped_fields"]} - set(e["deleted_fields"]) <= s["fields"]
        assert {x["id"] for x in e["added_fields"]} - set(e["deleted_fields"]) <= s["new_fields"]
        assert set(e["deleted_fields"]) <= s["gone_fields"]


def test_a_big_action_is_split_into_payloads_sharing_one_transaction(emu):
    c = Client(emu)
    hook = c.create()
    emu.webhooks.max_records_per_payload = 7
    report = emu.churn(seed=4, edit_share=1.0, add_share=0, delete_share=0)
    edited = {r for e in report["tables"].values() for r in e["edited"]}
    p = c.all_payloads(hook)
    assert len(p) >= len(edited) // 7 >= 4
    assert len({x["baseTransactionNumber"] for x in p}) == 1 and len({x["timestamp"] for x in p}) == 1
    pieces = [sum(len(e.get("changedRecordsById", {})) for e in x["changedTablesById"].values()) for x in p]
    assert max(pieces) == 7
    reported = {r for x in p for e in x["changedTablesById"].values() for r in e.get("changedRecordsById", {})}
    assert edited <= reported


def test_filters_data_types_scope_and_change_types(emu):
    c = Client(emu)
    projects, tasks, _ = tables(emu)
    fields_only = c.create(types=["tableFields"])
    scoped = c.create(types=["tableData"], filters={"dataTypes": ["tableData"], "recordChangeScope": tasks.id})
    adds = c.create(filters={"dataTypes": ["tableData"], "changeTypes": ["add"]})
    t = c.api.table(c.base_id, projects.id)
    rid = next(iter(projects.records))
    t.update(rid, {"Name": "x"})
    t.create({"Name": "y"})
    c.api.table(c.base_id, tasks.id).create({"Name": "z"})
    assert c.all_payloads(fields_only) == []
    assert [list(x["changedTablesById"]) for x in c.all_payloads(scoped)] == [[tasks.id]]
    assert [list(x["changedTablesById"][next(iter(x["changedTablesById"]))]) for x in c.all_payloads(adds)] == [
        ["createdRecordsById"], ["createdRecordsById"]]


def test_comments_are_not_in_the_feed(emu):
    c = Client(emu)
    hook = c.create()
    projects = tables(emu)[0]
    rid = next(iter(projects.records))
    c.api.table(c.base_id, projects.id).add_comment(rid, "hello")
    assert c.all_payloads(hook) == []  # reference §4.5: no comments data type


# ------------------------------------------------------------------------------------------ injection


def test_injected_errors_and_disabled_hooks(emu):
    c = Client(emu)
    hook = c.create()
    projects, t, rid = first_project(c)
    emu.webhooks.inject_error(c.base_id, hook, "INTERNAL_ERROR")
    t.update(rid, {"Name": "still recorded"})
    r = requests.post(f"{emu.url}/__admin/webhooks/{c.base_id}/{hook}/inject-error", json={"code": "INVALID_HOOK"})
    assert r.status_code == 200 and r.json()["code"] == "INVALID_HOOK"
    t.update(rid, {"Name": "not recorded"})
    parsed = c.parsed(hook)
    assert [(p.error, p.error_code) for p in parsed] == [(True, "INTERNAL_ERROR"), (None, None),
                                                        (True, "INVALID_HOOK")]
    assert c.base.webhooks()[0].is_hook_enabled is True  # looks healthy, as bluedot saw (reference §4.6)
    other = c.create()
    emu.webhooks.disable(c.base_id, other)
    assert [h.is_hook_enabled for h in c.base.webhooks() if h.id == other] == [False]
    third = c.create()
    requests.post(f"{emu.url}/__admin/webhooks/{c.base_id}/{third}/expire")
    assert [h.is_hook_enabled for h in c.base.webhooks() if h.id == third] == [False]
    t.update(rid, {"Name": "nobody records this"})
    assert [h.cursor_for_next_payload for h in c.base.webhooks()] == [4, 1, 1]
    assert requests.delete(f"{emu.url}/__admin/webhooks/{c.base_id}/{other}").status_code == 200
    assert requests.delete(f"{emu.url}/__admin/webhooks/{c.base_id}/{other}").status_code == 404
    assert [h["id"] for h in requests.get(f"{emu.url}/__admin/webhooks/{c.base_id}").json()["webhooks"]] == [
        hook, third]


def test_deleting_a_watched_field_invalidates_the_hook(emu):
    c = Client(emu)
    projects = tables(emu)[0]
    score = fid(projects, "Score")
    hook = c.create(filters={"dataTypes": ALL, "watchDataInFieldIds": [score]})
    emu.delete_field(c.base_id, projects.id, score)
    p = c.all_payloads(hook)
    assert p[-1]["error"] is True and p[-1]["code"] == "INVALID_HOOK"
    c.api.table(c.base_id, projects.id).update(next(iter(projects.records)), {"Name": "after"})
    assert len(c.all_payloads(hook)) == len(p)
    scoped = c.create(filters={"dataTypes": ALL, "recordChangeScope": tables(emu)[2].id})
    emu.delete_table(c.base_id, tables(emu)[2].id)
    assert [(x["error"], x["code"]) for x in c.all_payloads(scoped) if x.get("error")] == [(True, "INVALID_FILTERS")]


def test_faults_counters_and_rate_limits_on_webhook_routes():
    ws = generate_workspace(seed=5, bases=1, tables_per_base=2, records_per_table=3)
    with Emulator(ws, clock=ManualClock(T0)) as emu:
        c = Client(emu)
        hook = c.create()
        emu.faults.add(route="webhook_payloads", kind="503", nth=1)
        assert c.call("GET", f"/{hook}/payloads")[0] == 503
        assert c.call("GET", f"/{hook}/payloads")[0] == 200
        assert emu.counters.requests("webhook_payloads") == 2 and emu.counters.requests("webhook_create") == 1
        statuses = [c.call("GET")[0] for _ in range(4)]
        # 5 a second per base, webhook routes included: create, one read and 3 lists (a fault answers first)
        assert statuses == [200, 200, 200, 429]
        assert emu.counters.requests("webhook_list") == 4
        emu.clock.advance(31)
        assert c.call("GET")[0] == 200


def test_writes_without_hooks_open_no_journal(emu):
    projects = tables(emu)[0]
    c = Client(emu)
    assert emu.webhooks.begin(emu.workspace, [c.base_id]) is None
    c.api.table(c.base_id, projects.id).update(next(iter(projects.records)), {"Name": "x"})
    assert emu.workspace.journal is None and c.base.webhooks() == []


def test_values_does_not_import_the_server():
    """The package's old import cycle: values.py (cell validation) imported the HTTP server."""
    import ast

    import snapstore.emulator.content as content
    import snapstore.emulator.values as values

    for mod in (values, content):
        tree = ast.parse(open(mod.__file__).read())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "server" not in imported and "snapstore.emulator.server" not in imported, mod.__name__


def test_unchanged_cells_upload_and_admin_churn_make_payloads(emu):
    c = Client(emu)
    projects, t, rid = first_project(c)
    name, score = fid(projects, "Name"), fid(projects, "Score")
    hook = c.create(includes={"includeCellValuesInFieldIds": [name, score]})
    t.update(rid, {"Score": 11})
    r = requests.post(f"{emu.url}/v0/{c.base_id}/{rid}/Files/uploadAttachment",
                      headers={"Authorization": f"Bearer {emu.token}"},
                      json={"contentType": "text/plain", "file": "aGVsbG8=", "filename": "hello.txt"})
    assert r.status_code == 200
    assert requests.post(f"{emu.url}/__admin/churn", json={"seed": 9, "edit_share": 0.2}).status_code == 200
    p = c.all_payloads(hook)
    first = p[0]["changedTablesById"][projects.id]["changedRecordsById"][rid]
    assert first["unchanged"]["cellValuesByFieldId"] == {name: projects.records[rid].cells[name]}
    assert first["current"]["cellValuesByFieldId"][score] == 11
    files = p[1]["changedTablesById"][projects.id]["changedRecordsById"][rid]["current"]["cellValuesByFieldId"][
        fid(projects, "Files")]
    assert files[-1]["filename"] == "hello.txt" and files[-1]["size"] == 5
    assert p[2]["actionMetadata"]["source"] == "client" and len(p) == 3


def test_listing_records_by_post_is_not_an_action(emu):
    c = Client(emu)
    c.create()
    projects = tables(emu)[0]
    calls = []
    real = emu.webhooks.begin
    emu.webhooks.begin = lambda ws, ids: calls.append(ids) or real(ws, ids)
    r = requests.post(f"{emu.url}/v0/{c.base_id}/{projects.id}/listRecords",
                      headers={"Authorization": f"Bearer {emu.token}"}, json={"pageSize": 5})
    assert r.status_code == 200 and len(r.json()["records"]) == 5
    assert calls == []  # a read costs no journal (a schema copy per page otherwise)
    c.api.table(c.base_id, projects.id).update(next(iter(projects.records)), {"Name": "x"})
    assert calls == [[c.base_id]]


def test_constructor_switches_scopes_and_computed_changes():
    ws = generate_workspace(seed=5, bases=1, tables_per_base=2, records_per_table=3)
    with Emulator(ws, clock=ManualClock(T0), rate_limits=False, scopes=["data.records:read"],
                  webhook_computed_changes=True) as emu:
        assert emu.webhooks.report_computed is True
        c = Client(emu)
        assert c.api.whoami()["scopes"] == ["data.records:read"]
        assert c.call("GET")[0] == 403
        emu.add_token(emu.token)  # scopes=None: every scope again
        assert c.call("GET") == (200, {"webhooks": []})
