"""One config file for every command: TOML, shared top-level keys and a table per
command; an unknown key is an error naming the key, the file and the keys that exist; flags beat
the environment, which beats the file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.store import Store
from tests.helpers.selection_store import take


def run(args: list[str], env: dict | None = None):
    base = {"SNAPSTORE_CONFIG": None, "SNAPSTORE_STORE": None, "AIRTABLE_TOKEN_FILE": None}
    return CliRunner().invoke(main, args, env={**base, **(env or {})}, catch_exceptions=False)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Two stores: 'a' with two snapshots, 'b' with one, so a listing tells which was read."""
    root = tmp_path_factory.mktemp("config")
    a, b = Store.init(root / "a"), Store.init(root / "b")
    take(a, edit=0)
    take(a, edit=2)
    take(b, edit=0)
    return root


def cfg(tmp_path, text: str):
    p = tmp_path / "snapstore.toml"
    p.write_text(text, encoding="utf-8")
    return p


def count(r) -> int:
    assert r.exit_code == 0, (r.output, r.stderr)
    return len(json.loads(r.stdout))


def test_snapstore_config_gives_log_its_store(stores, tmp_path):
    p = cfg(tmp_path, f'store = "{stores / "a"}"\n')
    assert count(run(["log", "--json"], {"SNAPSTORE_CONFIG": str(p)})) == 2
    assert count(run(["log", "--json", "--config", str(p)])) == 2


def test_precedence_flag_then_environment_then_file(stores, tmp_path):
    p = cfg(tmp_path, f'store = "{stores / "a"}"\n')
    env = {"SNAPSTORE_CONFIG": str(p), "SNAPSTORE_STORE": str(stores / "b")}
    assert count(run(["log", "--json"], env)) == 1  # the environment beats the file
    assert count(run(["log", "--json", "--store", str(stores / "a")], {**env})) == 2  # the flag beats both
    env["SNAPSTORE_STORE"] = None
    assert count(run(["log", "--json", "--store", str(stores / "b")], env)) == 1


def test_a_command_table_beats_the_top_level(stores, tmp_path):
    p = cfg(tmp_path, f'store = "{stores / "b"}"\n\n[log]\nstore = "{stores / "a"}"\nlimit = 1\n')
    env = {"SNAPSTORE_CONFIG": str(p)}
    assert count(run(["log", "--json"], env)) == 1  # [log] limit
    log = json.loads(run(["log", "--json", "--limit", "5"], env).stdout)
    assert len(log) == 2  # [log] store is a; the flag beats [log] limit
    show = json.loads(run(["show", "latest", "--json"], env).stdout)
    assert show["id"] == json.loads(run(["log", "--json", "--store", str(stores / "b")]).stdout)[0]["id"]


def test_config_applies_to_diff_and_export(stores, tmp_path):
    out = tmp_path / "exports"
    p = cfg(tmp_path, f'store = "{stores / "a"}"\n\n[export]\nout = "{out}"\nformat = "ndjson"\nno_attachments = true\n'
                      '\n[diff]\nfields = true\n')
    env = {"SNAPSTORE_CONFIG": str(p)}
    r = run(["diff", "--json"], env)
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)
    changed = [c for t in d["tables"] for c in t.get("changed", [])]
    assert changed and all("fields" in c for c in changed)  # [diff] fields = true
    r = run(["export", "-q"], env)
    assert r.exit_code == 0, r.stderr
    (folder,) = out.iterdir()
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["ndjson"]


def test_shared_flags_can_be_set_in_a_table(stores, tmp_path):
    p = cfg(tmp_path, f'store = "{stores / "a"}"\n[log]\njson = true\n')
    assert count(run(["log"], {"SNAPSTORE_CONFIG": str(p)})) == 2


@pytest.mark.parametrize("text,words", [
    ('stor = "x"\n', ["'stor'", "top level", "did you mean 'store'"]),
    ('[log]\nfields = true\n', ["'fields'", "[log]", "limit", "store"]),
    ('[lgo]\nlimit = 1\n', ["[lgo]", "did you mean 'log'"]),
    ('[feed.enable]\nbogus = 1\n', ["'bogus'", "[feed.enable]", "base"]),
])
def test_an_unknown_key_names_the_key_the_file_and_the_nearest_keys(stores, tmp_path, text, words):
    """One short line: the nearest keys, or a command's few keys; never every key of every command."""
    p = cfg(tmp_path, text)
    for args in (["log"], ["export", "--json"]):
        r = run(args, {"SNAPSTORE_CONFIG": str(p)})
        assert r.exit_code == 2, (r.output, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and str(p) in lines[0], r.stderr
        for w in words:
            assert w in lines[0], (w, lines[0])
        assert len(lines[0]) < 400 + len(str(p)) and "json_output" not in lines[0], lines[0]


@pytest.mark.parametrize("text", ["[log]\njson_output = true\n", "[feed.status]\nas_json = true\n",
                                  "[forget]\ndo_prune = true\n", "[export]\nout_dir = 'x'\n"])
def test_internal_parameter_names_are_not_keys(stores, tmp_path, text):
    """Only the documented option names are keys: `json_output` is how the code names --json."""
    p = cfg(tmp_path, text)
    r = run(["log"], {"SNAPSTORE_CONFIG": str(p)})
    assert r.exit_code == 2 and "unknown key" in r.stderr, r.stderr


def test_a_nul_byte_in_a_path_setting_is_one_line(stores, tmp_path):
    p = cfg(tmp_path, 'store = "/tmp/a\\u0000b"\n')
    r = run(["log"], {"SNAPSTORE_CONFIG": str(p)})
    assert r.exit_code == 2 and "NUL byte" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_key_of_another_command_at_top_level_is_fine(stores, tmp_path):
    p = cfg(tmp_path, f'store = "{stores / "a"}"\ncomments = true\nformat = "json"\n')
    assert count(run(["log", "--json"], {"SNAPSTORE_CONFIG": str(p)})) == 2


def test_the_token_never_goes_in_the_file(stores, tmp_path):
    p = cfg(tmp_path, 'token = "patSECRET123456"\n')
    r = run(["log"], {"SNAPSTORE_CONFIG": str(p)})
    assert r.exit_code == 2 and "token_file" in r.stderr and "patSECRET" not in r.stderr + r.stdout


def test_a_missing_or_broken_file_is_one_line(tmp_path):
    r = run(["log"], {"SNAPSTORE_CONFIG": str(tmp_path / "nope.toml")})
    assert r.exit_code == 2 and "nope.toml" in r.stderr and "does not exist" in r.stderr
    p = cfg(tmp_path, "store = \n")
    r = run(["log"], {"SNAPSTORE_CONFIG": str(p)})
    assert r.exit_code == 2 and "not valid TOML" in r.stderr


def test_the_negative_of_a_switch_is_not_a_key(tmp_path):
    """`--attachments/--no-attachments`: the key is `attachments = false`; `no_attachments = true`
    would read as the opposite of what it says, so it is refused."""
    p = cfg(tmp_path, "[snapshot]\nno_attachments = true\n")
    r = run(["snapshot"], {"SNAPSTORE_CONFIG": str(p)})
    assert r.exit_code == 2 and "'no_attachments'" in r.stderr and "did you mean 'attachments'" in r.stderr
