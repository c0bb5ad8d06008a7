"""``snapstore serve`` in a real browser (Playwright driving the system's Chromium) against the
emulator: the scheduled snapshot on the dashboard, a failure on the dashboard and in one
notification, the diff page against an independent API read, a record's versions, a revert through
the page; and the gate (token, Host, CSRF, headers) over plain HTTP.

The tests of this module share one running serve and run in order (each leaves the state the next
one starts from). SNAPSTORE_SCREENSHOTS=DIR saves each page at 1280 and 390 pixels wide."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from snapstore.store import Store
from tests.serve_world import CHROMIUM, LIMITS, PASSWORD, TOKEN, cli, serve_world

#: computed field types: a revert cannot write them (restore reports them as not writable)
COMPUTED = {"formula", "rollup", "lookup", "multipleLookupValues", "count", "autoNumber", "createdTime",
            "lastModifiedTime", "createdBy", "lastModifiedBy", "button", "aiText"}


def _chromium() -> str:
    """The operating system's Chromium, installed when missing (as .ci/run does): never
    Playwright's own browser download."""
    if not os.path.exists(CHROMIUM) and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, capture_output=True)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium", pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with serve_world(tmp_path_factory.mktemp("serve")) as w:
        yield w


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, world):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.goto(f"{world.url}/?token={TOKEN}")
    yield pg
    ctx.close()


def shoot(browser, world, name: str, path: str) -> None:
    out = os.environ.get("SNAPSTORE_SCREENSHOTS")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        pg = ctx.new_page()
        pg.goto(f"{world.url}{path}{'&' if '?' in path else '?'}token={TOKEN}")
        pg.screenshot(path=str(Path(out) / f"serve-{name}-{width}.png"), full_page=True)
        ctx.close()


def schema(world, base_id: str) -> dict[str, dict]:
    return {t["id"]: t for t in world.api(f"meta/bases/{base_id}/tables")["tables"]}


def read_all(world) -> dict[tuple[str, str], dict[str, dict]]:
    return {(b.id, t.id): world.records(b.id, t.id) for b in world.emu.workspace.bases for t in b.tables}


# ------------------------------------------------------------------------------------------------


def test_dashboard_shows_the_scheduled_snapshot_that_ran(world, page, browser):
    snaps = Store.open(world.store, password=PASSWORD).list_snapshots()
    assert len(snaps) == 1  # taken by serve's schedule, not by the test
    page.goto(world.url + "/")
    rows = page.locator("table.bases tbody tr")
    assert rows.count() == 2
    for b in world.emu.workspace.bases:
        row = page.locator("table.bases tr", has_text=b.id)
        assert row.locator(".pill").inner_text() == "complete"
        assert snaps[0].id in row.inner_text()
    sched = page.locator("tr", has_text="snapstore snapshot")
    assert "exit 0" in sched.inner_text()
    assert "of 1,000" in page.locator("section", has_text="API calls this month").inner_text()
    shoot(browser, world, "dashboard", "/")


def test_the_diff_page_shows_exactly_the_cells_an_api_read_says_changed(world, page, browser):
    before = read_all(world)
    world.emu.churn(edit_share=0.12, add_share=0.0, delete_share=0.0, seed=4)
    after = read_all(world)
    r = cli(world.env, "snapshot", "--store", str(world.store), "--comments", *LIMITS.split())
    assert r.returncode == 0, r.stderr
    world.before, world.after = before, after
    expected = {}
    for key, recs in after.items():
        for rid, fields in recs.items():
            old = before[key].get(rid)
            if old is None:
                continue
            diff = {f for f in set(old) | set(fields) if old.get(f) != fields.get(f)}
            if diff:
                expected[rid] = diff
    assert expected  # the churn changed something
    page.goto(world.url + "/diff")
    shown = {}
    recs = page.locator(".rec.changed")
    for i in range(recs.count()):
        rec = recs.nth(i)
        shown[rec.get_attribute("data-record")] = {
            row.get_attribute("data-field") for row in rec.locator("tr[data-field]").all()}
    assert shown == expected
    # the cells themselves: old → new as the API gave them (text cells)
    rid, fids = next((rid, f) for rid, f in expected.items())
    key = next(k for k, v in after.items() if rid in v)
    for fid in fids:
        o, n = before[key][rid].get(fid), after[key][rid].get(fid)
        if isinstance(o, str) and isinstance(n, str) and max(len(o), len(n)) < 200:
            row = page.locator(f'.rec[data-record="{rid}"] tr[data-field="{fid}"]')
            assert row.locator("td.old").inner_text().strip() == o.strip()
            assert row.locator("td.new").inner_text().strip() == n.strip()
    shoot(browser, world, "diff", "/diff")
    shoot(browser, world, "timeline", "/timeline")
    shoot(browser, world, "search", "/search?q=Beacon")


def test_a_records_page_shows_its_versions(world, page, browser):
    rid = next(iter(_changed(world)))
    page.goto(f"{world.url}/record/{rid}")
    versions = page.locator("li.version")
    assert versions.count() == 2
    assert "current" in versions.nth(0).inner_text() and "changed" in versions.nth(1).inner_text()
    world.reverted = rid
    shoot(browser, world, "record", f"/record/{rid}")


def _changed(world) -> dict[str, tuple]:
    out = {}
    for key, recs in world.after.items():
        for rid, fields in recs.items():
            if rid in world.before[key] and world.before[key][rid] != fields:
                out[rid] = key
    return out


def test_a_record_reverted_through_the_page_equals_the_snapshot(world, page, browser):
    rid = world.reverted
    base_id, table_id = _changed(world)[rid]
    page.goto(f"{world.url}/record/{rid}")
    page.locator("li.version").nth(1).locator("button").click()  # the older version
    page.wait_for_url("**/restore/plan")
    plan = page.locator("table.plan").inner_text()
    assert re.search(r"rewrite \(changed since\)\s+1", plan), plan
    shoot_plan = page.screenshot  # (the plan page is a POST result: saved here when asked)
    if os.environ.get("SNAPSTORE_SCREENSHOTS"):
        shoot_plan(path=str(Path(os.environ["SNAPSTORE_SCREENSHOTS"]) / "serve-restore-plan-1280.png"), full_page=True)
    page.locator("#confirm").click()
    page.wait_for_url("**/restore/run")
    assert page.locator("#result").inner_text().startswith("exit 0")
    live = world.api(f"{base_id}/{table_id}/{rid}", returnFieldsByFieldId="true")["fields"]
    types = {f["id"]: f["type"] for f in schema(world, base_id)[table_id]["fields"]}
    then = world.before[(base_id, table_id)][rid]
    writable = {f for f in set(then) | set(live) if types.get(f) not in COMPUTED}
    assert {f: live.get(f) for f in writable} == {f: then.get(f) for f in writable}


def test_a_failure_shows_on_the_dashboard_and_in_one_notification(world, page, browser):
    bad = world.emu.workspace.bases[0]
    world.emu.faults.add(route="get_schema", kind="503", rate=1.0, base_id=bad.id)
    seen = len(world.hook.notifications())
    try:
        page.goto(world.url + "/")
        page.locator("tr", has_text="snapstore snapshot").locator("button").click()
        world.wait_for(lambda: len(world.hook.notifications()) > seen, "the notification")
        world.wait_for(lambda: "exit 3" in world.get("/").text, "the run's end")
    finally:
        world.emu.faults.clear()
    page.goto(world.url + "/")
    first = page.locator("table.bases tbody tr").first  # failures first
    assert bad.id in first.inner_text() and first.locator(".pill").inner_text() == "partial"
    assert "503" in first.locator(".reason").inner_text()
    new = world.hook.notifications()[seen:]
    assert len(new) == 1
    assert bad.id in new[0]["message"] and "503" in new[0]["message"] and "exit code: 3" in new[0]["message"]
    assert world.emu.token not in str(new) and PASSWORD not in str(new)
    shoot(browser, world, "dashboard-failure", "/")


# ------------------------------------------------------------------------------------------------
# the gate, over plain HTTP

ROUTES = [("GET", "/"), ("GET", "/timeline"), ("GET", "/diff"), ("GET", "/diff.csv"), ("GET", "/record/recX"),
          ("GET", "/search?q=a"), ("GET", "/export/latest.zip"), ("GET", "/static/style.css"),
          ("POST", "/restore/plan"), ("POST", "/restore/run"), ("POST", "/run/0"), ("GET", "/nope")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_route_needs_the_token(world, method, path):
    r = requests.request(method, world.url + path, timeout=30, allow_redirects=False)
    assert r.status_code == 401
    r = requests.request(method, world.url + path, timeout=30, allow_redirects=False,
                         cookies={"snapstore_session": "forged"})
    assert r.status_code == 401
    r = requests.get(world.url + "/?token=wrong", timeout=30, allow_redirects=False)
    assert r.status_code == 401


def test_foreign_host_and_post_without_csrf_are_refused(world):
    for host in ("evil.example:80", "attacker.test", f"127.0.0.2:{world.url.rsplit(':', 1)[1]}"):
        r = world.session.get(world.url + "/", headers={"Host": host}, timeout=30)
        assert r.status_code == 403, host
    for path in ("/restore/plan", "/restore/run", "/run/0"):
        r = world.session.post(world.url + path, data={"snapshot": "latest", "base": "x", "table": "y"}, timeout=30)
        assert r.status_code == 403 and "CSRF" in r.text
        r = world.session.post(world.url + path, data={"csrf": "guess"}, timeout=30)
        assert r.status_code == 403
    r = world.session.post(world.url + "/run/0", data={"csrf": world.csrf()}, timeout=30,
                           headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert r.status_code == 403


def test_headers_and_no_secret_in_pages_or_the_access_log(world):
    for path in ("/", "/timeline", "/diff", "/search?q=a", "/diff.csv"):
        r = world.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["content-security-policy"] and "unsafe-inline" not in \
            r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        for secret in (TOKEN, PASSWORD, world.emu.token):
            assert secret not in r.text
    access = [x for x in world.log.read_text().splitlines() if re.search(r" (GET|POST) /", x)]
    assert access and not [x for x in access if TOKEN in x or "token=" in x]


def test_downloads_export_zip_and_diff_csv(world):
    import io
    import zipfile

    r = world.get("/export/latest.zip?format=csv")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert any(n.endswith(".csv") and "/data/csv/" in n for n in names)
    csv_text = world.get("/diff.csv").text
    assert csv_text.startswith("base,table,record_id,record,change,field,old,new")
