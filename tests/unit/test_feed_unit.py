"""The change feed's pieces without a server: the writer's carry-over path, what payloads say, the
knock-on closure through links, the re-read formula, the feed state's checks."""

from __future__ import annotations

import copy
import json
import random

import pytest
from storegen import BASE, SCHEMA, TABLE, churn, make_records

from snapstore.feed import knockon
from snapstore.feed.links import LinkIndex, computing_links
from snapstore.feed.payloads import FeedBroken, changes_from, read_payloads
from snapstore.feed.reread import MAX_FORMULA, chunks, formula_for
from snapstore.feed.state import FeedState, Registry, load_registry, save_registry, state_from_doc
from snapstore.store import Store


@pytest.fixture
def store(tmp_path):
    return Store.init(tmp_path / "store")


def _snapshot(store, recs=None, *, changes=None):
    snap = store.begin_snapshot()
    snap.add_base(BASE, "b", SCHEMA)
    tw = snap.table(BASE, TABLE)
    if changes is None:
        tw.add_many(recs)
        tw.finish()
    else:
        tw.apply_changes(*changes)
    return snap.commit()


def _hashes(store, info):
    t = store.record_hashes(info, BASE, TABLE)
    return dict(zip(t.column("record_id").to_pylist(), t.column("hash").to_pylist(), strict=True))


def test_apply_changes_ends_equal_to_a_full_listing(store, tmp_path):
    recs = make_records(800)
    _snapshot(store, recs)
    edited = churn(recs, 0.05, seed=3)
    gone = {r["id"] for r in recs[:7]}
    added = make_records(5, seed=9)
    now = [r for r in edited if r["id"] not in gone] + added
    before = {r["id"]: r for r in recs}
    upserts = [r for r in now if before.get(r["id"]) != r]
    feed = _snapshot(store, changes=(upserts, gone | {"recNOTINTHESTORE1"}))
    other = Store.init(tmp_path / "other")
    _snapshot(other, recs)
    full = _snapshot(other, now)
    assert _hashes(store, feed) == _hashes(other, full)
    t = feed.table(BASE, TABLE)
    assert (t.records, t.new, t.deleted) == (len(now), 5, 7)
    assert t.changed == len(upserts) - 5
    assert sorted(map(json.dumps, store.records(feed, BASE, TABLE))) == sorted(
        map(json.dumps, other.records(full, BASE, TABLE)))


def test_apply_changes_without_changes_writes_no_manifest(store):
    first = _snapshot(store, make_records(300))
    again = _snapshot(store, changes=([], []))
    a = first.doc["bases"][0]["tables"][0]
    b = again.doc["bases"][0]["tables"][0]
    assert b["manifest"] == a["manifest"] and b["records"] == 300 and (b["new"], b["changed"], b["deleted"]) == (0, 0, 0)


def test_apply_changes_needs_a_parent(store):
    snap = store.begin_snapshot()
    snap.add_base(BASE, "b", SCHEMA)
    try:
        with pytest.raises(Exception, match="no parent snapshot"):
            snap.table(BASE, TABLE).apply_changes([], [])
    finally:
        snap.abandon()


def _payload(txn, tables=None, **top):
    return {"timestamp": "2024-01-01T00:00:00.000Z", "baseTransactionNumber": txn, "payloadFormat": "v0",
            "actionMetadata": {"source": "publicApi"}, "changedTablesById": tables or {}, **top}


def test_changes_from_payloads():
    ps = [
        _payload(1, {"tblA": {"createdRecordsById": {"rec1": {}}, "changedRecordsById": {"rec2": {}}}}),
        _payload(2, {"tblA": {"destroyedRecordIds": ["rec2", "rec3"]}}),
        _payload(2, {"tblB": {"changedFieldsById": {"fld1": {"current": {"name": "x"}}}}}),
        _payload(3, {"tblC": {"changedFieldsById": {"fld2": {"current": {"type": "number"}}}}}),
        _payload(4, createdTablesById={"tblD": {}}, destroyedTableIds=["tblE"]),
    ]
    ch = changes_from(ps)
    assert ch.records == {"tblA": {"rec1"}} and ch.destroyed == {"tblA": {"rec2", "rec3"}}
    assert ch.schema and set(ch.full) == {"tblC", "tblD"}  # a rename alone re-lists nothing
    assert ch.created_tables == {"tblD"} and ch.destroyed_tables == {"tblE"}


class _PagedSource:
    """Answers the payload route from a list, ``limit`` a page, like Airtable."""

    def __init__(self, payloads):
        self.payloads = payloads
        self.calls = []

    def page(self, cursor, limit):
        self.calls.append(cursor)
        got = self.payloads[cursor - 1: cursor - 1 + limit]
        nxt = cursor + len(got)
        return {"payloads": got, "cursor": nxt, "mightHaveMore": nxt <= len(self.payloads)}


def test_read_payloads_pages_of_50_until_might_have_more_is_false(monkeypatch):
    from snapstore.source import webhooks

    src = _PagedSource([_payload(i // 3) for i in range(120)])
    monkeypatch.setattr(webhooks, "payload_page", lambda s, b, h, c, limit=50: src.page(c, limit))
    got = read_payloads(None, "app", "achX", 1)
    assert len(got.payloads) == 120 and got.cursor == 121 and got.requests == 3 and src.calls == [1, 51, 101]
    assert got.transactions == 40
    again = read_payloads(None, "app", "achX", 121)
    assert again.payloads == [] and again.cursor == 121 and again.requests == 1
    src.payloads.append({"error": True, "code": "INVALID_HOOK"})
    with pytest.raises(FeedBroken, match="INVALID_HOOK"):
        read_payloads(None, "app", "achX", 100)


def test_reread_formula_chunks():
    rng = random.Random(1)
    ids = ["rec" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEF0123456789") for _ in range(14))
           for _ in range(250)]
    parts = list(chunks(ids + ["rec'); DROP", "x"]))
    assert [len(p) for p in parts] == [100, 100, 50]  # never a malformed id in a formula
    assert all(len(formula_for(p)) < MAX_FORMULA for p in parts)
    assert formula_for(["recAAAAAAAAAAAAAA1"][:1]) == "OR(RECORD_ID()='recAAAAAAAAAAAAAA1')"


# -- the knock-on closure --------------------------------------------------------------------

def _link(fid, target, inverse=None):
    o = {"linkedTableId": target}
    if inverse:
        o["inverseLinkFieldId"] = inverse
    return {"id": fid, "name": fid, "type": "multipleRecordLinks", "options": o}


# A <-> B (two-sided: fAB / fBA); B looks up A's Name; C <-> B, C rolls up B's lookup (2 hops);
# D has a one-sided self-link with a count and a lookup of its primary field over it.
LINKED = {"tables": [
    {"id": "tblA", "fields": [{"id": "fA", "type": "singleLineText"}, _link("fAB", "tblB", "fBA")]},
    {"id": "tblB", "fields": [_link("fBA", "tblA", "fAB"), _link("fBC", "tblC", "fCB"),
                              {"id": "fBlk", "type": "multipleLookupValues",
                               "options": {"recordLinkFieldId": "fBA", "fieldIdInLinkedTable": "fA"}}]},
    {"id": "tblC", "fields": [_link("fCB", "tblB", "fBC"),
                              {"id": "fCro", "type": "rollup", "options": {"recordLinkFieldId": "fCB"}},
                              {"id": "fCfx", "type": "formula", "options": {"referencedFieldIds": ["fCro"]}}]},
    {"id": "tblD", "primaryFieldId": "fDname", "fields": [
        {"id": "fDname", "type": "singleLineText"}, _link("fDD", "tblD"),
        {"id": "fDn", "type": "count", "options": {"recordLinkFieldId": "fDD"}},
        {"id": "fDlk", "type": "multipleLookupValues",
         "options": {"recordLinkFieldId": "fDD", "fieldIdInLinkedTable": "fDname"}}]},
]}


def _rec(rid, **cells):
    return {"id": rid, "createdTime": "t", "fields": cells}


def test_computing_links():
    assert computing_links(LINKED) == {("tblB", "fBA"), ("tblC", "fCB"), ("tblD", "fDD")}


def test_closure_follows_old_and_new_links_transitively():
    old_recs = {
        "tblA": {"recA1": _rec("recA1", fAB=["recB1"])},
        "tblB": {"recB1": _rec("recB1", fBC=["recC1"]), "recB2": _rec("recB2", fBC=["recC2"])},
    }
    old = lambda t, ids: {i: old_recs.get(t, {})[i] for i in ids if i in old_recs.get(t, {})}  # noqa: E731
    new = {"tblA": {"recA1": _rec("recA1", fAB=["recB2"])}}  # relinked from B1 to B2
    knock, moving = knockon.closure(LINKED, {"tblA": {"recA1"}}, {}, old, new, LinkIndex(), set())
    # both the old and the new linked B records, then the C records rolling them up
    assert knock == {"tblB": {"recB1", "recB2"}, "tblC": {"recC1", "recC2"}} and moving == set()


def test_closure_through_a_one_sided_link_uses_the_index():
    idx = LinkIndex()
    idx.update("tblD", ["fDD"], [_rec("recD2", fDD=["recD1"]), _rec("recD3", fDD=["recD1", "recD4"])])
    none = lambda t, ids: {}  # noqa: E731
    knock, _ = knockon.closure(LINKED, {"tblD": {"recD1"}}, {}, none, {"tblD": {"recD1": _rec("recD1")}}, idx, set())
    assert knock == {"tblD": {"recD2", "recD3"}}
    knock, _ = knockon.closure(LINKED, {}, {"tblD": {"recD4"}}, none, {}, idx, set())
    assert knock == {"tblD": {"recD3"}}  # its link cell lost a target


def test_closure_stops_where_no_moved_value_is_read():
    plain = copy.deepcopy(LINKED)
    # C rolls up a plain field of B: B records whose lookups of A moved do not move C
    plain["tables"][2]["fields"][1]["options"]["fieldIdInLinkedTable"] = "fBplain"
    old_recs = {"tblA": {"recA1": _rec("recA1", fAB=["recB1"])}, "tblB": {"recB1": _rec("recB1", fBC=["recC1"])}}
    old = lambda t, ids: {i: old_recs.get(t, {})[i] for i in ids if i in old_recs.get(t, {})}  # noqa: E731
    new = {"tblA": {"recA1": _rec("recA1", fAB=["recB1"])}}
    knock, _ = knockon.closure(plain, {"tblA": {"recA1"}}, {}, old, new, LinkIndex(), set())
    assert knock == {"tblB": {"recB1"}}
    knock, _ = knockon.closure(LINKED, {"tblA": {"recA1"}}, {}, old, new, LinkIndex(), set())
    assert knock == {"tblB": {"recB1"}, "tblC": {"recC1"}}


def test_closure_inverse_cells_follow_without_computed_fields():
    # C computes nothing through fCB? It does; use A's side: B's link cell change moves A's inverse cells
    old = lambda t, ids: {"recB1": _rec("recB1", fBA=["recA1"])} if t == "tblB" else {}  # noqa: E731
    new = {"tblB": {"recB1": _rec("recB1", fBA=["recA2"])}}
    knock, _ = knockon.closure(LINKED, {"tblB": {"recB1"}}, {}, old, new, LinkIndex(), set())
    assert knock["tblA"] == {"recA1", "recA2"}  # A computes nothing through fAB, but its cells moved


def test_full_tables_close_over_links():
    full = knockon.full_tables(LINKED, LINKED, {"tblA": "a field retyped"}, {"tblA": {"fA"}}, set())
    assert set(full) == {"tblA", "tblB", "tblC"}  # B looks up fA; C rolls up B's lookup
    plain = copy.deepcopy(LINKED)
    plain["tables"][0]["fields"].append({"id": "fA2", "type": "number"})
    assert set(knockon.full_tables(plain, plain, {"tblA": "x"}, {"tblA": {"fA2"}}, set())) == {"tblA"}
    full = knockon.full_tables(LINKED, LINKED, {}, {}, {"tblA"})
    assert "tblB" in full and "tblA" not in full


# -- state -----------------------------------------------------------------------------------

def test_registry_round_trip_and_damage(store):
    from datetime import UTC, datetime

    from snapstore.feed.state import Hook

    reg = Registry(store.config["store_id"], {"appX": Hook("appX", "achAAAA", "t", "e")})
    save_registry(store, reg, datetime(2024, 1, 1, tzinfo=UTC))
    save_registry(store, reg, datetime(2024, 1, 2, tzinfo=UTC))
    assert load_registry(store).hooks["appX"].hook_id == "achAAAA"
    assert len(list(store.backend.list("feed/registry"))) == 1
    key = next(iter(store.backend.list("feed/registry")))[0]
    store.backend.delete(key)
    store.backend.put(key, b"{not json")
    got = load_registry(store)
    assert got.hooks == {} and "unreadable" in got.problem
    store.backend.delete(key)
    store.backend.put(key, Registry("someoneelse", reg.hooks).to_json())
    assert "another store" in load_registry(store).problem


def test_feed_state_checks():
    st = FeedState("S", "achX", 5, "r", "e", "feed", "why", None, None)
    doc = {"feed": {"app1": st.to_dict()}}
    assert state_from_doc(doc, "app1", "S")[0] == st
    assert "another store" in state_from_doc(doc, "app1", "T")[1]
    assert state_from_doc(doc, "app2", "S") == (None, None)
    assert "damaged" in state_from_doc({"feed": {"app1": {**st.to_dict(), "cursor": "x"}}}, "app1", "S")[1]
    assert "damaged" in state_from_doc({"feed": {"app1": [1]}}, "app1", "S")[1]
