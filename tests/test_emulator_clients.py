"""The emulator where a client can tell it from Airtable: each behaviour as a public client meets it
(pyairtable, plain HTTP, the snapstore CLI), following what Airtable documents or what clients that
run against the service rely on."""

from __future__ import annotations

import http.server
import json
import threading

import fixtures_alltypes as F
import pytest
import requests
from click.testing import CliRunner
from pyairtable import Api
from restore_helpers import new_base

from snapstore.emulator import Emulator, ManualClock, generate_workspace
from snapstore.emulator.ratelimit import RateLimiter, latency_sampler
from snapstore.emulator.state import Workspace


@pytest.fixture(scope="module")
def emu():
    ws = generate_workspace(seed=11, bases=1, tables_per_base=3, records_per_table=30, attachment_share=0.2,
                            link_share=0.5, comment_share=0.0, self_link_lookups=True)
    with Emulator(ws, clock=ManualClock(), rate_limits=False) as e:
        yield e


def _api(emu) -> Api:
    return Api(emu.token, endpoint_url=emu.url, retry_strategy=None)


def _field(table, name: str) -> str:
    return table.fields_by_name[name]["id"]


# -- formulas name one-word fields without braces ------------------------------------------------------

def test_formula_names_one_word_fields_without_braces(emu):
    b = emu.workspace.bases[0]
    t0 = b.tables[0]
    table = _api(emu).table(b.id, t0.id)
    name_of = {r.id: r.cells.get(_field(t0, "Name")) for r in t0.records.values()}
    first = sorted(name_of)[0]
    bare = table.all(formula=f"Name = '{name_of[first]}'")
    assert [r["id"] for r in bare] == [first]
    assert [r["id"] for r in table.all(formula=f"Name != '{name_of[first]}'")] == \
        [r["id"] for r in table.all(formula=f"{{Name}} != '{name_of[first]}'")]
    # arithmetic over bare names equals the braced form
    assert [r["id"] for r in table.all(formula="Quantity * Score > 100")] == \
        [r["id"] for r in table.all(formula="{Quantity} * {Score} > 100")]
    # a name with a space still needs braces; an unknown bare word is an unknown field, named
    r = requests.get(f"{emu.url}/v0/{b.id}/{t0.id}", params={"filterByFormula": "Nope = 1"},
                     headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)
    assert r.status_code == 422 and r.json()["error"]["type"] == "INVALID_FILTER_BY_FORMULA"
    assert "Nope" in r.json()["error"]["message"]
    assert table.all(formula="AND(TRUE(), TRUE)")  # TRUE stays a constant, not a field


# -- table names in URLs match without regard to case ----------------------------------------------

def test_table_names_in_urls_match_case_insensitively(emu):
    b = emu.workspace.bases[0]
    t0 = b.tables[0]
    api = _api(emu)
    exact = [r["id"] for r in api.table(b.id, t0.name).all()]
    assert exact and [r["id"] for r in api.table(b.id, t0.name.upper()).all()] == exact
    assert [r["id"] for r in api.table(b.id, t0.name.lower()).all()] == exact
    with pytest.raises(requests.HTTPError) as ei:
        api.table(b.id, t0.name + "x").all()
    assert ei.value.response.status_code == 403


# -- URL attachments are downloaded and kept --------------------------------------------------------

class _Files(http.server.BaseHTTPRequestHandler):
    BODY = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.path.startswith("/big"):
            body = b"x" * 4096
        elif self.path.startswith("/hop"):
            self.send_response(302)
            self.send_header("Location", "/cat.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        elif self.path.startswith("/cat.png"):
            body = self.BODY
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


@pytest.fixture()
def files_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_url_attachment_is_downloaded_and_kept(emu, files_server):
    b = emu.workspace.bases[0]
    t0 = b.tables[0]
    table = _api(emu).table(b.id, t0.id)
    emu.workspace.url_max_bytes = 1024
    try:
        rec = table.create({"Name": "with files", "Files": [
            {"url": f"{files_server}/cat.png"}, {"url": f"{files_server}/hop", "filename": "via-redirect.png"},
            {"url": f"{files_server}/missing.png"}, {"url": f"{files_server}/big"},
            {"url": "https://example.com/elsewhere.png"}]})
    finally:
        emu.workspace.url_max_bytes = 64 * 1024 * 1024
    atts = rec["fields"]["Files"]
    # the two it could fetch are kept (their bytes served back); the three it could not are dropped,
    # and the write itself succeeded, as Airtable's silent failures do
    assert [a["filename"] for a in atts] == ["cat.png", "via-redirect.png"]
    for a in atts:
        assert a["size"] == len(_Files.BODY) and a["type"] == "image/png"
        assert requests.get(a["url"], timeout=10).content == _Files.BODY
    errors = {f["url"].rsplit("/", 1)[-1]: f["error"] for f in emu.workspace.url_failures[-3:]}
    assert errors["missing.png"] == "HTTP 404"
    assert "limit" in errors["big"] and "loopback" in errors["elsewhere.png"]


# -- both sides of a link stay consistent -----------------------------------------------------------

def test_linking_from_the_other_side_of_a_single_link_keeps_both_sides(tmp_path):
    api_ws = Workspace(seed=3)
    with Emulator(api_ws, clock=ManualClock(), rate_limits=False, link_options="accept") as emu:
        base_id = new_base(emu, "Flats")
        api = _api(emu)
        base = api.base(base_id)
        people = base.create_table("People", [{"name": "Name", "type": "singleLineText"}])
        flats = base.create_table("Apartments", [
            {"name": "Name", "type": "singleLineText"},
            {"name": "Tenant", "type": "multipleRecordLinks",
             "options": {"linkedTableId": people.id, "prefersSingleRecordLink": True}}])
        inverse = next(f for f in base.schema(force=True).table(people.id).fields if f.type == "multipleRecordLinks")
        a2 = flats.create({"Name": "Apartment 2"})
        old = people.create({"Name": "Old tenant", inverse.id: [a2["id"]]})
        new = people.create({"Name": "New tenant", inverse.id: [a2["id"]]})
        # every record's link cells agree with the other side's
        flat = flats.get(a2["id"])["fields"]["Tenant"]
        assert sorted(flat) == sorted([old["id"], new["id"]])
        for p in (old, new):
            assert people.get(p["id"])["fields"][inverse.name] == [a2["id"]]
        people.update(old["id"], {inverse.id: []})
        assert flats.get(a2["id"])["fields"]["Tenant"] == [new["id"]]
        assert inverse.name not in people.get(old["id"])["fields"]


# -- lookups through a self-link follow the linked record -------------------------------------------

def test_self_link_lookups_follow_the_linked_record(emu):
    b = emu.workspace.bases[0]
    t0 = b.tables[0]
    table = _api(emu).table(b.id, t0.id)
    rel = _field(t0, "Related")
    a = table.create({"Name": "holder"})
    target = table.create({"Name": "target one", "Quantity": 4})
    table.update(a["id"], {rel: [target["id"]]})
    got = table.get(a["id"])["fields"]
    assert got["Related names"] == ["target one"] and got["Related total quantity"] == 4 and got["Related count"] == 1
    table.update(target["id"], {"Name": "target renamed", "Quantity": 9})
    got = table.get(a["id"])["fields"]
    assert got["Related names"] == ["target renamed"] and got["Related total quantity"] == 9
    table.delete(target["id"])
    got = table.get(a["id"])["fields"]
    assert "Related names" not in got and got.get("Related count", 0) == 0


# -- a loaded workspace is consistent from its first read ------------------------------------------

def test_loaded_workspace_recomputes_computed_cells_and_says_which(tmp_path):
    ws = generate_workspace(seed=5, bases=1, tables_per_base=2, records_per_table=10, attachment_share=0.0)
    t0 = ws.bases[0].tables[0]
    rec = next(iter(t0.records.values()))
    label = _field(t0, "Label")
    good = rec.cells[label]
    rec.cells[label] = "stale value"
    rec.cells[_field(t0, "Double score")] = -1
    path = ws.save(str(tmp_path / "ws"))
    loaded = Workspace.load(path)
    assert loaded.bases[0].tables[0].records[rec.id].cells[label] == good
    assert {(x["record"], x["field"]) for x in loaded.recomputed_at_load} == \
        {(rec.id, label), (rec.id, _field(t0, "Double score"))}
    # the CLI says which, on start
    from snapstore.commands.emulator import emulator as emulator_cmd

    r = CliRunner().invoke(emulator_cmd, ["--workspace", str(tmp_path / "ws"), "--host", "256.0.0.1"])
    assert r.exit_code == 1 and "cannot listen" in r.stderr  # stops before serving; the line came first
    assert "recomputed 2 computed cell(s)" in r.stderr and rec.id in r.stderr


# -- prefersSingleRecordLink on create: refused by default, kept behind a switch --------------------

def _restore_single_link(tmp_path, mode: str) -> tuple[dict, dict]:
    from snapstore.commands.restore import restore as restore_cmd

    store, snap = F.build(tmp_path / "store", hostile=False)
    with Emulator(Workspace(seed=7, users=[F.USER1, F.USER2, F.USER3]), rate_limits=False,
                  link_options=mode) as emu:
        target = new_base(emu, "Target")
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "AIRTABLE_TOKEN_FILE": None,
               "SNAPSTORE_CONFIG": None}
        res = CliRunner().invoke(restore_cmd, [snap.id, "--store", str(tmp_path / "store"), "--to-base", target,
                                               "--json", "--rate-limit-base", "2000", "--rate-limit-token", "20000"],
                                 env=env)
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        with emu.lock:
            b = emu.workspace.base(target)
            main = next(t for t in b.tables if t.name == "Projects")
            parent = main.fields_by_name["Parent"]
            name = main.fields_by_name["Name"]["id"]
            links = {main.records[r].cells.get(name) or "": [main.records[x].cells.get(name) or "" for x in
                                                              main.records[r].cells.get(parent["id"], [])]
                     for r in main.records}
    return report, {"options": parent["options"], "links": links}


def _source_links() -> dict:
    names = {r["id"]: r["fields"].get("fldNAME0000000001") or "" for r in F.main_records()}
    return {names[r["id"]]: [names[x] for x in r["fields"].get("fldPARENT00000001", [])] for r in F.main_records()}


@pytest.mark.parametrize("mode", ["refuse", "accept"])
def test_restore_single_link_option_under_both_behaviours(tmp_path, mode):
    report, got = _restore_single_link(tmp_path, mode)
    lost = [x for x in report["not_restorable"] if x.get("option") == "prefersSingleRecordLink"]
    # the links themselves round-trip either way
    assert got["links"] == _source_links()
    if mode == "refuse":  # the create route refused it: the field is made without it, and that is reported
        assert got["options"]["prefersSingleRecordLink"] is False
        assert [x["field"] for x in lost] == ["Parent"] and "refused" in lost[0]["reason"]
    else:
        assert got["options"]["prefersSingleRecordLink"] is True and lost == []


def test_create_field_refuses_options_outside_the_write_format(emu):
    b = emu.workspace.bases[0]
    url = f"{emu.url}/v0/meta/bases/{b.id}/tables/{b.tables[1].id}/fields"
    r = requests.post(url, json={"name": "Single", "type": "multipleRecordLinks",
                                 "options": {"linkedTableId": b.tables[0].id, "prefersSingleRecordLink": True}},
                      headers={"Authorization": f"Bearer {emu.token}"}, timeout=10)
    assert r.status_code == 422 and "prefersSingleRecordLink" in r.json()["error"]["message"]
    assert "Single" not in b.tables[1].fields_by_name


# -- latency and the two rate-limit models ----------------------------------------------------------

def test_latency_moves_the_emulators_clock_per_request():
    clock = ManualClock(1000.0)
    ws = generate_workspace(seed=2, bases=1, tables_per_base=1, records_per_table=5, attachment_share=0.0)
    with Emulator(ws, clock=clock, rate_limits=False, latency=0.25) as e:
        api = _api(e)
        api.table(ws.bases[0].id, ws.bases[0].tables[0].id).all()
        api.base(ws.bases[0].id).schema(force=True)
        assert clock.now() == pytest.approx(1000.5) and e.latency_total == pytest.approx(0.5)
    draw = latency_sampler("lognormal:0.2:0.5", seed=1)
    xs = [draw() for _ in range(2000)]
    assert xs == [latency_sampler("lognormal:0.2:0.5", seed=1)() for _ in range(1)] + xs[1:]
    assert 0.18 < sorted(xs)[1000] < 0.22 and min(xs) > 0  # the median is the one asked for
    for bad in ("abc", "uniform:1", "normal:-1:2", "uniform:3:1", "weibull:1:1", "nan"):
        with pytest.raises(ValueError):
            latency_sampler(bad)


def test_window_punishes_a_burst_that_the_bucket_absorbs():
    clock = ManualClock(0.0)
    window = RateLimiter(clock, per_base=5, per_token=50, penalty=30.0, model="window")
    bucket = RateLimiter(clock, per_base=5, per_token=50, penalty=30.0, model="bucket", burst=10)
    burst = [window.check("t", "app1") for _ in range(8)]
    assert burst[:5] == [None] * 5 and burst[5] == "base"
    assert [bucket.check("t", "app1") for _ in range(10)] == [None] * 10
    assert bucket.check("t", "app1") == "base"  # the 11th: the bucket is empty
    assert bucket.check("t", "app1") == "base" and bucket.blocked_until("base", "app1") == 30.0
    clock.advance(30.0)
    # after the penalty: a full bucket again, then the documented rate holds
    assert [bucket.check("t", "app1") for _ in range(10)] == [None] * 10
    clock.advance(1.0)
    assert [bucket.check("t", "app1") for _ in range(5)] == [None] * 5
    assert bucket.check("t", "app1") == "base"
    with pytest.raises(ValueError):
        RateLimiter(clock, model="leaky")


def test_emulator_cli_takes_the_new_switches():
    from snapstore.commands.emulator import emulator as emulator_cmd

    r = CliRunner().invoke(emulator_cmd, ["--latency", "weibull:1:2", "--bases", "0"])
    assert r.exit_code == 2 and "--latency" in r.output
    r = CliRunner().invoke(emulator_cmd, ["--rate-model", "leaky", "--bases", "0"])
    assert r.exit_code == 2
