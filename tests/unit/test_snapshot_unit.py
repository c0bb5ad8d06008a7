"""The snapshot orchestration against an in-memory fake source: selection, restarts, failures,
attachments, comments, interruption. Fast and deterministic; the emulator tests cover HTTP."""

from __future__ import annotations

import contextlib
import io
import threading

import pytest

from snapstore.ops.snapshot import (
    EXIT_OK,
    EXIT_PARTIAL,
    Selection,
    SnapshotOptions,
    estimate,
    plan_snapshot,
    take_snapshot,
)
from snapstore.selection import SelectionError
from snapstore.source import (
    AttachmentExpired,
    AuthError,
    IteratorExpired,
    RequestStats,
    Throttle,
    TransientError,
)
from snapstore.store import Store

ATT_FIELD = "fldAttachments001"


def _table(tid: str, name: str) -> dict:
    return {
        "id": tid, "name": name, "primaryFieldId": "fldName000000001",
        "fields": [{"id": "fldName000000001", "name": "Name", "type": "singleLineText"},
                   {"id": ATT_FIELD, "name": "Files", "type": "multipleAttachments", "options": {}}],
        "views": [{"id": "viwGrid000000001", "name": "Grid view", "type": "grid"}],
    }


class FakeSource:
    """Two bases; records generated per table; hooks to inject failures."""

    api_url = "http://fake"

    def __init__(self, n: int = 250) -> None:
        self.stats = RequestStats()
        self.download_stats = RequestStats()
        self.cancel = threading.Event()
        self.throttle = Throttle(rate_base=5, rate_token=50)
        self.policy = type("P", (), {"backoff": 0.0})()
        self.bases_ = [
            {"id": "appAAAAAAAAAAAAA1", "name": "Sales", "permissionLevel": "create"},
            {"id": "appBBBBBBBBBBBBB1", "name": "Ops", "permissionLevel": "read"},
        ]
        self.schemas = {
            "appAAAAAAAAAAAAA1": {"tables": [_table("tblA000000000001", "Deals"), _table("tblA000000000002", "People")]},
            "appBBBBBBBBBBBBB1": {"tables": [_table("tblB000000000001", "Tasks")]},
        }
        self.records: dict[tuple[str, str], list[dict]] = {}
        for b, s in self.schemas.items():
            for t in s["tables"]:
                recs = []
                for i in range(n):
                    fields = {"fldName000000001": f"{t['name']} {i}"}
                    if i % 10 == 0:
                        fields[ATT_FIELD] = [{"id": f"att{t['id'][3:]}x{i}", "url": f"u:{t['id']}:{i}:0",
                                              "filename": f"f{i}.txt", "size": 5, "type": "text/plain"}]
                    recs.append({"id": f"rec{t['id'][3:]}x{i}", "createdTime": "2024-01-01T00:00:00.000Z",
                                 "fields": fields, "commentCount": 1 if i % 50 == 0 else 0})
                self.records[(b, t["id"])] = recs
        self.expire_once: set[tuple[str, str]] = set()
        self.fail_tables: set[str] = set()
        self.expired_urls: set[str] = set()
        self.downloads: list[str] = []
        self.comment_calls = 0
        self.auth_fail = False
        self.lock = threading.Lock()

    def _count(self, route, base=None):
        self.stats.count(route, base, 200)

    def preflight(self):
        if self.auth_fail:
            raise AuthError("the token was rejected (401)")
        self._count("whoami")
        return {"id": "usrFAKE"}

    whoami = preflight

    def bases(self):
        self._count("list_bases")
        return list(self.bases_)

    def schema(self, base_id):
        self._count("schema", base_id)
        return self.schemas[base_id]

    def iter_pages(self, base_id, table_id, *, comment_counts=False):
        recs = self.records[(base_id, table_id)]
        for i in range(0, max(len(recs), 1), 100):
            self._count("list_records", base_id)
            if table_id in self.fail_tables:
                raise TransientError("server error 503 after every retry")
            if i >= 100 and (base_id, table_id) in self.expire_once:
                self.expire_once.discard((base_id, table_id))
                raise IteratorExpired("expired")
            page = [dict(r) for r in recs[i:i + 100]]
            if not comment_counts:
                for r in page:
                    r.pop("commentCount", None)
            yield page

    def get_record(self, base_id, table_id, record_id):
        self._count("get_record", base_id)
        for r in self.records[(base_id, table_id)]:
            if r["id"] == record_id:
                out = dict(r)
                out["fields"] = {k: ([{**a, "url": a["url"] + "-fresh"} for a in v] if k == ATT_FIELD else v)
                                 for k, v in r["fields"].items()}
                return out
        raise AssertionError("unknown record")

    def comments(self, base_id, table_id, record_id):
        self._count("comments", base_id)
        with self.lock:
            self.comment_calls += 1
        return [{"id": "com" + record_id[3:], "text": "hi", "createdTime": "2024-01-01T00:00:00.000Z",
                 "author": {"id": "usrX"}}]

    @contextlib.contextmanager
    def open_attachment(self, url):
        if url in self.expired_urls:
            raise AttachmentExpired("attachment URL expired (410)")
        with self.lock:
            self.downloads.append(url)
        yield io.BytesIO(b"hello")


@pytest.fixture
def store(tmp_path):
    return Store.open(tmp_path / "store", create=True)


def run(store, src, sel=None, **opts):
    plan = plan_snapshot(src, sel)
    return take_snapshot(store, src, plan, SnapshotOptions(**opts))


def test_first_and_unchanged_second_snapshot(store):
    src = FakeSource()
    r1 = run(store, src)
    assert r1.exit_code == EXIT_OK and r1.info.status == "complete"
    assert r1.info.records == 750
    assert {t.new for t in r1.tables} == {250}
    assert r1.attachments["new"] == 75 and len(src.downloads) == 75
    # ceil(250/100) = 3 list requests per table, 3 tables
    assert r1.requests["requests_by_route"]["list_records"] == 9

    src.downloads.clear()
    r2 = run(store, src)
    assert r2.exit_code == EXIT_OK
    assert {(t.new, t.changed, t.deleted, t.unchanged) for t in r2.tables} == {(0, 0, 0, 250)}
    assert src.downloads == [] and r2.attachments == {"new": 0, "reused": 75, "failed": 0, "bytes": 0,
                                                       "download_retries": 0}
    assert r2.info.stats["requests"] == 9
    assert r2.info.stats["attachments"]["reused"] == 75


def test_selection_by_name_id_and_qualified(store):
    src = FakeSource(n=5)
    plan = plan_snapshot(src, Selection(bases=["Sales"]))
    assert [b.name for b in plan.bases] == ["Sales"] and len(plan.tables) == 2
    plan = plan_snapshot(src, Selection(tables=["Sales/People", "tblB000000000001"]))
    assert sorted(t.name for _b, t in plan.tables) == ["People", "Tasks"]
    plan = plan_snapshot(src, Selection(exclude_bases=["appBBBBBBBBBBBBB1"], exclude_tables=["Deals"]))
    assert [t.name for _b, t in plan.tables] == ["People"]
    with pytest.raises(SelectionError, match="no base 'Nope' visible to this token"):
        plan_snapshot(src, Selection(bases=["Nope"]))
    with pytest.raises(SelectionError, match="no table 'Nope' in the selected bases"):
        plan_snapshot(src, Selection(tables=["Nope"]))


def test_expired_iterator_restarts_the_table(store):
    src = FakeSource()
    src.expire_once.add(("appAAAAAAAAAAAAA1", "tblA000000000001"))
    r = run(store, src)
    assert r.exit_code == EXIT_OK
    deals = next(t for t in r.tables if t.table_id == "tblA000000000001")
    assert deals.restarts == 1 and deals.records == 250 and deals.new == 250
    assert r.info.stats["iterator_restarts"] == 1


def test_failing_table_gives_partial_snapshot_and_others_continue(store):
    src = FakeSource()
    src.fail_tables.add("tblA000000000002")
    r = run(store, src)
    assert r.exit_code == EXIT_PARTIAL and r.info.status == "partial"
    assert r.info.missing[0]["table_id"] == "tblA000000000002"
    assert "503" in r.info.missing[0]["reason"]
    ok = [t for t in r.tables if t.status == "done"]
    assert len(ok) == 2 and all(t.records == 250 for t in ok)
    assert store.resolve("latest").table("appAAAAAAAAAAAAA1", "tblA000000000002") is None


def test_expired_attachment_url_is_refreshed_by_rereading_the_record(store):
    src = FakeSource(n=20)
    src.expired_urls.add("u:tblA000000000001:0:0")
    r = run(store, src)
    assert r.exit_code == EXIT_OK
    assert "u:tblA000000000001:0:0-fresh" in src.downloads
    assert r.requests["requests_by_route"]["get_record"] == 1


def test_comments_fetched_only_when_count_changed(store):
    src = FakeSource()
    r1 = run(store, src, comments=True)
    assert src.comment_calls == 15  # 5 records with a comment per table, 3 tables
    assert sum(t.comments_fetched for t in r1.tables) == 15
    src.comment_calls = 0
    r2 = run(store, src, comments=True)
    assert src.comment_calls == 0 and sum(t.comments_carried for t in r2.tables) == 15
    info = store.resolve("latest")
    comments = store.comments(info, "appAAAAAAAAAAAAA1", "tblA000000000001")
    assert len(comments) == 5
    # a new comment on one record: only that record is fetched
    src.records[("appAAAAAAAAAAAAA1", "tblA000000000001")][3]["commentCount"] = 1
    src.comment_calls = 0
    run(store, src, comments=True)
    assert src.comment_calls == 1


def test_bad_token_during_planning_leaves_no_trace(tmp_path):
    src = FakeSource()
    src.auth_fail = True
    with pytest.raises(AuthError):
        plan_snapshot(src)
    assert not (tmp_path / "store").exists()


def test_interrupt_abandons_and_next_run_completes(store):
    src = FakeSource()
    calls = {"n": 0}
    real = src.iter_pages

    def interrupting(base_id, table_id, **kw):
        for page in real(base_id, table_id, **kw):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            yield page

    src.iter_pages = interrupting
    plan = plan_snapshot(src)
    with pytest.raises(KeyboardInterrupt):
        take_snapshot(store, src, plan, SnapshotOptions(base_workers=1))
    assert store.list_snapshots() == []
    assert store.lock_holder() is None
    src.iter_pages = real
    assert not src.cancel.is_set()  # the source is usable again
    r = run(store, src)
    assert r.exit_code == EXIT_OK and r.info.records == 750


def test_estimate_from_previous_snapshot(store):
    src = FakeSource()
    plan = plan_snapshot(src)
    est = estimate(plan, rate_base=5, rate_token=50)
    assert est["complete"] is False and est["unknown_tables"] == 3
    run(store, src)
    plan = plan_snapshot(src, previous=store.resolve("latest"))
    est = estimate(plan, rate_base=5, rate_token=50, margin=0.0)
    assert est["complete"] is True
    assert est["requests"] == 9 + 2  # 3 list requests per table + a schema per base
    # base A: 1 + 6 requests at 5/s
    assert est["seconds"] == pytest.approx(1.4)
