"""A restore writes at its request floor: a create per 10 records and, of each two-sided link,
one side (Airtable fills in the other), counted on the emulator's own request counters."""

from __future__ import annotations

import math

import pytest
from restore_helpers import assert_restored, emulated, new_base, snapshot

from snapstore import restore as R
from snapstore.emulator import generate_workspace

SCHEMA_ROUTES = {"get_schema", "create_table", "create_field", "update_field", "create_base"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # the shape the floor was measured on: 3,000 records, 7 link fields (3 two-sided pairs, a self-link)
    ws = generate_workspace(seed=1, bases=1, tables_per_base=3, records_per_table=1000, attachment_share=0.0,
                            link_share=0.5, comment_share=0.0)
    with emulated(ws, tmp_path_factory) as env:
        yield env


def test_restore_writes_one_side_of_each_link_and_stays_within_the_floor(env):
    emu, store, snap, base = env["emu"], env["store"], env["snap"], env["base"]
    schema = store.schema(snap, base)
    links = [(t, f) for t in schema["tables"] for f in t["fields"] if f["type"] == "multipleRecordLinks"]
    assert any(f["options"].get("inverseLinkFieldId") for _, f in links), "the workspace has two-sided links"
    # writing every link field of every record (both sides): what the restore did before
    both_sides = sum(math.ceil(sum(1 for r in store.records(snap, base, t["id"])
                                   if any(r["fields"].get(f["id"]) for tt, f in links if tt is t)) / 10)
                     for t in schema["tables"])
    target = new_base(emu)
    emu.counters.reset()
    rep = R.restore(R.SnapshotSource(store, snap), to_base=target, client=env["client"], comments=False)
    routes = {k: v["requests"] for k, v in emu.counters.snapshot()["routes"].items()}
    creates = sum(math.ceil(snap.table(base, t["id"]).records / 10) for t in schema["tables"])
    assert routes["create_records"] == creates == rep.floor["creates"]
    floor = creates + rep.floor["link_updates"]
    sent = routes["create_records"] + routes["update_records"]
    # above the floor: only the inverse-side lists whose order the written side's links would not
    # reproduce (the generator's forward lists are in random order, its inverse ones in listing order)
    assert sent <= 1.05 * floor, (sent, floor, routes)
    assert routes["update_records"] < both_sides
    assert rep.floor["writes"] == sum(n for k, n in routes.items() if k not in ("get_schema", "list_records"))
    # and nothing is lost: every cell, every link list in its order, on both sides
    assert_restored(store, snap, base, snapshot(store, env["client"], target), target, rep.id_map_file)


def test_the_report_prints_requests_against_the_floor(env):
    from click.testing import CliRunner

    from snapstore.cli import main

    emu = env["emu"]
    target = new_base(emu)
    r = CliRunner().invoke(main, ["restore", "latest", "--to-base", target, "--store", str(env["store"].location),
                                  "--token", emu.token, "--api-url", emu.url, "--no-comments", "--table", "Clients",
                                  "--rate-limit-base", "2000", "--rate-limit-token", "20000"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("Write requests:"))
    assert "floor" in line and "creates" in line and "link updates" in line
