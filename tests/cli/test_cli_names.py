"""`--base` and `--table` take an id or a name in every verb, by one rule (snapstore/selection.py),
and an unknown one is the same usage error everywhere: exit 2, one line naming what exists.
Walks every verb that takes them, with a name, with an id and with a name nothing has."""

from __future__ import annotations

import json
import shutil

import pytest
from cliworld import LIMITS, RATES, run, two_snapshots

from snapstore.errors import EXIT_OK, EXIT_USAGE


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with two_snapshots(tmp_path_factory.mktemp("names"), records=12, attachments=0.0) as w:
        doc = json.loads(run(["show", "--json"], w["env"]).stdout)
        base = doc["bases"][0]
        table = base["tables"][0]
        yield {**w, "base": (base["base_id"], base["name"]), "table": (table["table_id"], table["name"])}


@pytest.fixture
def env(world, tmp_path):
    dest = tmp_path / "store"
    shutil.copytree(world["store"], dest)
    return {**world["env"], "SNAPSTORE_STORE": str(dest)}


def verbs(base: str, table: str, out, target: str = "appNONE00000000") -> list[list[str]]:
    """Every verb with --base (and --table where it takes one)."""
    return [
        ["snapshot", "--base", base, *LIMITS],
        ["snapshot", "--table", table, "--base", base, *LIMITS],
        ["check", "--base", base, *RATES],
        ["log", "--base", base],
        ["show", "--base", base],
        ["diff", "--base", base],
        ["diff", "--table", table, "--base", base],
        ["find", "a", "--base", base],
        ["find", "a", "--table", table, "--base", base],
        ["sql", "SELECT 1", "--base", base],
        ["export", "--base", base, "--table", table, "--out", str(out), "--format", "ndjson"],
        ["restore", "latest", "--base", base, "--table", table, "--to-base", target, "-n", *RATES],
        ["restore", "latest", "--revert", "--base", base, "--table", table, "--yes", "-n", *RATES],
        ["feed", "enable", "--base", base, *RATES],
        ["feed", "status", "--base", base],
        ["feed", "disable", "--base", base, *RATES],
    ]


@pytest.mark.parametrize("by", ["name", "id"])
def test_every_verb_takes_a_name_or_an_id(world, env, tmp_path, by):
    (base_id, base_name), (table_id, table_name) = world["base"], world["table"]
    base, table = (base_name, table_name) if by == "name" else (base_id, table_id)
    for args in verbs(base, f"{base}/{table}" if by == "name" else table, tmp_path, base_id):
        r = run(args, env)
        assert r.exit_code == EXIT_OK, (args, r.output, r.stderr)
        if args[:2] == ["feed", "disable"]:  # the hook enable made is gone: the name reached Airtable
            assert "deleted" in r.stdout and base_id in r.stdout, r.stdout
        if args[:2] == ["feed", "status"]:
            assert base_name in r.stdout and base_id in r.stdout, r.stdout


@pytest.mark.parametrize("flag", ["--base", "--table"])
def test_an_unknown_base_or_table_is_exit_2_and_names_what_exists(world, env, tmp_path, flag):
    (base_id, base_name), (table_id, table_name) = world["base"], world["table"]
    for args in verbs(base_name, table_name, tmp_path, base_id):
        if flag not in args:
            continue
        args = list(args)
        args[args.index(flag) + 1] = "Nope"
        r = run(args, env)
        assert r.exit_code == EXIT_USAGE, (args, r.output, r.stderr)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "Traceback" not in r.output, (args, r.stderr)
        what = flag[2:]
        shown = f"{base_name} ({base_id})" if what == "base" else table_id
        assert lines[0].startswith(f"Error: no {what} 'Nope'") and shown in lines[0], (args, lines[0])


def test_an_empty_base_is_not_everything(env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = run(["export", "--base", "", "--out", str(out)], env)
    assert r.exit_code == EXIT_USAGE and "--base '' names nothing" in r.stderr
    assert list(out.iterdir()) == []


def test_revert_without_a_terminal_asks_for_yes(world, env):
    """No terminal to ask on: a usage error that says what to add, before anything is read."""
    (base_id, _), (table_id, _) = world["base"], world["table"]
    r = run(["restore", "latest", "--revert", "--base", base_id, "--table", table_id, *RATES], env)
    assert r.exit_code == EXIT_USAGE and "add --yes" in r.stderr, r.output
