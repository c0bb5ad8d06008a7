"""Rate limits, fault injection, counters and admin endpoints of the emulator."""

from __future__ import annotations

import pytest
import requests
from pyairtable import Api

from snapstore.emulator import Emulator, ManualClock, ScaledClock, generate_workspace

RATE_BODY = {"error": {"type": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}}


@pytest.fixture(scope="module")
def ws():
    return generate_workspace(seed=11, bases=2, tables_per_base=1, records_per_table=20, attachment_share=0.1)


def test_burst_over_5_per_second_gets_429_then_penalty(ws):
    clock = ManualClock()
    with Emulator(ws, clock=clock) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        for _ in range(5):
            t.first()
        with pytest.raises(requests.HTTPError) as ei:
            t.first()
        assert ei.value.response.status_code == 429
        assert ei.value.response.json() == RATE_BODY
        # the other base is not affected
        other = ws.bases[1]
        assert api.table(other.id, other.tables[0].id).first() is not None
        clock.advance(29.0)
        with pytest.raises(requests.HTTPError):
            t.first()
        clock.advance(1.0)
        assert t.first() is not None
        snap = emu.counters.snapshot()
        assert snap["bases"][b.id]["429s"] == 2
        assert snap["routes"]["list_records"]["429s"] == 2


def test_sliding_window_allows_5_per_clock_second(ws):
    clock = ManualClock()
    with Emulator(ws, clock=clock) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        for _ in range(4):
            for _ in range(5):
                t.first()
            clock.advance(1.0)
        assert emu.counters.snapshot()["total"]["429s"] == 0


def test_token_limit_across_bases(ws):
    clock = ManualClock()
    with Emulator(ws, clock=clock, rate_limit_token=7, penalty=10) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        a, b = ws.bases
        for _ in range(4):
            api.table(a.id, a.tables[0].id).first()
        for _ in range(3):
            api.table(b.id, b.tables[0].id).first()
        with pytest.raises(requests.HTTPError) as ei:
            api.whoami()
        assert ei.value.response.status_code == 429
        clock.advance(10)
        assert api.whoami()["id"]


def test_scaled_clock_penalty_is_short_in_real_time(ws):
    import time

    # 1 request a clock second (50 ms real): two back to back are a 429 even on a loaded machine
    with Emulator(ws, clock=ScaledClock(20), penalty=2, rate_limit_base=1) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        hit = False
        for _ in range(50):
            try:
                t.first()
            except requests.HTTPError as e:
                assert e.response.status_code == 429
                hit = True
                break
        assert hit
        time.sleep(0.15)  # 3 clock seconds at scale 20
        assert t.first() is not None


def test_faults_nth_503_and_rate(ws):
    with Emulator(ws, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        emu.faults.add(route="list_records", kind="503", nth=2)
        t.first()
        with pytest.raises(requests.HTTPError) as ei:
            t.first()
        assert ei.value.response.status_code == 503
        assert ei.value.response.json()["error"]["type"] == "RETRIABLE_ERROR"
        t.first()
        emu.faults.clear()
        emu.faults.add(route="get_schema", kind="500", rate=1.0, base_id=b.id)
        with pytest.raises(requests.HTTPError) as ei:
            api.base(b.id).schema(force=True)
        assert ei.value.response.status_code == 500
        other = ws.bases[1]
        assert api.base(other.id).schema(force=True).tables
        emu.faults.clear()
        emu.faults.add(route="list_records", kind="502", rate=0.5, seed=3)
        codes = []
        for _ in range(20):
            try:
                t.first()
                codes.append(200)
            except requests.HTTPError as e:
                codes.append(e.response.status_code)
        assert 502 in codes and 200 in codes


def test_fault_dropped_connection_and_slow(ws):
    with Emulator(ws, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        emu.faults.add(route="list_records", kind="drop", nth=1)
        with pytest.raises(requests.exceptions.ConnectionError):
            t.first()
        assert t.first() is not None
        emu.faults.clear()
        emu.faults.add(route="get_record", kind="slow", rate=1.0, delay=0.3)
        rid = next(iter(b.tables[0].records))
        import time

        t0 = time.monotonic()
        assert t.get(rid)["id"] == rid
        assert time.monotonic() - t0 >= 0.3
        # pyairtable's default retry strategy rides over a dropped connection
        emu.faults.clear()
        emu.faults.add(route="list_records", kind="drop", nth=1)
        assert Api(emu.token, endpoint_url=emu.url).table(b.id, b.tables[0].id).first() is not None


def test_admin_endpoints(ws):
    clock = ManualClock()
    with Emulator(ws, clock=clock, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        it = t.iterate(page_size=5)
        next(it)
        snap = requests.get(f"{emu.url}/__admin/counters").json()
        assert snap["routes"]["list_records"]["requests"] == 1
        assert snap["bases"][b.id]["bytes_sent"] > 0
        assert requests.post(f"{emu.url}/__admin/expire-iterators").json() == {"expired": 1}
        with pytest.raises(requests.HTTPError):
            next(it)
        r = requests.post(f"{emu.url}/__admin/faults", json={"route": "whoami", "kind": "503", "nth": 1})
        assert r.status_code == 200
        with pytest.raises(requests.HTTPError):
            api.whoami()
        assert requests.delete(f"{emu.url}/__admin/faults").json() == {"cleared": True}
        assert requests.get(f"{emu.url}/__admin/faults").json() == {"faults": []}
        rep = requests.post(f"{emu.url}/__admin/churn", json={"seed": 5, "edit_share": 0.2, "rename_fields": 1}).json()
        assert sum(len(x["edited"]) for x in rep["tables"].values()) == 8
        now = clock.now()
        assert requests.post(f"{emu.url}/__admin/clock/advance", json={"seconds": 5}).json()["now"] == now + 5
        requests.post(f"{emu.url}/__admin/counters/reset")
        assert requests.get(f"{emu.url}/__admin/counters").json()["total"]["requests"] == 0
        assert requests.get(f"{emu.url}/__admin/nope").status_code == 404
        assert requests.post(f"{emu.url}/__admin/faults", json={"kind": "bogus"}).status_code == 400


def test_keep_alive_connections_are_reused(ws):
    with Emulator(ws, rate_limits=False) as emu:
        api = Api(emu.token, endpoint_url=emu.url, retry_strategy=None)
        b = ws.bases[0]
        t = api.table(b.id, b.tables[0].id)
        t.first()
        pool = api.session.get_adapter(emu.url).poolmanager
        t.first()
        t.first()
        conns = [p for p in pool.pools._container.values()]
        assert conns and conns[0].num_connections == 1
