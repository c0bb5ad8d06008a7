"""One tool, one set of conventions: every command takes --json, -q and -v; --json
prints one JSON document and nothing else (errors too); -q prints nothing on success and one line
on failure; -n is --dry-run and nothing else."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.store import Store

SCALE = 50
RATES = ["--rate-limit-base", str(5 * SCALE), "--rate-limit-token", str(50 * SCALE), "--penalty", str(30 / SCALE)]
LIMITS = [*RATES, "--no-progress"]


def leaves(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from leaves(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


COMMANDS = list(leaves(main))


def run(args: list[str], env: dict | None = None):
    return CliRunner().invoke(main, args, env={"SNAPSTORE_CONFIG": None, "AIRTABLE_TOKEN_FILE": None, **(env or {})},
                              catch_exceptions=False)


def test_every_command_is_registered():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"snapshot", "log", "show", "check", "diff", "history", "find", "cat", "export", "restore", "import",
            "forget", "prune", "verify", "stats", "tag", "init", "unlock", "rebuild-catalog", "migrate",
            "emulator", "demo", "feed enable", "feed status", "feed disable"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_the_shared_flags(path, cmd):
    opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
    assert {"--json", "-q", "--quiet", "-v", "--verbose", "--config", "--color"} <= opts, sorted(opts)
    r = run([*path, "--help"])
    assert r.exit_code == 0 and "--json" in r.output and "--quiet" in r.output
    # -n is --dry-run wherever it exists, and nothing else
    for p in cmd.params:
        if "-n" in getattr(p, "opts", []):
            assert p.name == "dry_run" and "--dry-run" in p.opts


@pytest.mark.parametrize("verb", ["snapshot", "export", "restore", "import", "prune", "verify"])
def test_every_verb_that_draws_progress_takes_progress_and_no_progress(verb):
    cmd = dict(COMMANDS)[(verb,)]
    opts = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
    assert {"--progress", "--no-progress"} <= opts, sorted(opts)


def test_log_n_is_gone_and_limit_stays():
    log = dict(COMMANDS)[("log",)]
    opts = {o for p in log.params for o in getattr(p, "opts", [])}
    assert "-n" not in opts and {"--limit", "--last"} <= opts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An emulator, a store with two snapshots of it, and ids to name things by."""
    root = tmp_path_factory.mktemp("conventions")
    ws = generate_workspace(seed=3, bases=1, tables_per_base=2, records_per_table=20, attachment_share=0.1)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        store = root / "store"
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url, "SNAPSTORE_STORE": str(store)}
        assert run(["snapshot", *LIMITS, "-q"], env).exit_code == 0
        emu.churn(seed=1, edit_share=0.2)
        assert run(["snapshot", *LIMITS, "-q"], env).exit_code == 0
        st = Store.open(store)
        info = st.list_snapshots()[0]
        base, table = info.bases[0], info.bases[0].tables[0]
        rec = next(iter(st.records(info, base.base_id, table.table_id)))
        st.close() if hasattr(st, "close") else None
        export = root / "exports"
        assert run(["export", "--out", str(export), "--format", "json", "-q"], env).exit_code == 0
        folder = next(export.iterdir())
        yield {"root": root, "env": env, "store": store, "base": base.base_id, "rec": rec["id"],
               "folder": folder, "emu": emu}


def invocations(w, tmp) -> list[list[str]]:
    """A representative run of every verb that reads or writes a store or Airtable."""
    tmp.mkdir(parents=True, exist_ok=True)  # (export creates its --out folder, never that folder's parents)
    return [
        ["log"], ["log", "--last", "1"], ["show", "latest"], ["diff"], ["diff", "latest~1", "latest"],
        ["history", w["rec"]], ["find", "a"], ["cat", "latest", w["rec"]], ["stats"], ["verify"],
        ["tag", "--add", "kept", "latest"], ["forget", "--keep-last", "5", "-n"], ["prune", "-n"],
        ["export", "--out", str(tmp / "ex"), "--format", "ndjson"], ["check", *RATES],
        ["snapshot", "-n", *RATES], ["snapshot", *LIMITS],
        ["restore", "latest", "--to-base", w["base"], "-n", *RATES],
        ["import", str(w["folder"]), "--store", str(tmp / "imported")],
        ["init", "--store", str(tmp / "new")], ["unlock"], ["rebuild-catalog"],
        ["migrate", str(w["store"]), str(tmp / "migrated")], ["feed", "status"],
    ]


def _ids(w):
    return [" ".join(a[:2]) for a in invocations(w, w["root"])]


@pytest.fixture
def store_copy(world, tmp_path):
    import shutil

    dest = tmp_path / "store"
    shutil.copytree(world["store"], dest)
    return {**world["env"], "SNAPSTORE_STORE": str(dest)}


def test_json_output_of_every_verb_parses(world, store_copy, tmp_path):
    for args in invocations(world, tmp_path / "json"):
        r = run([*args, "--json"], store_copy)
        assert r.exit_code == 0, (args, r.output, r.stderr)
        doc = json.loads(r.stdout)  # stdout is one JSON document, nothing else
        assert isinstance(doc, dict | list), args


def test_snapshot_listings_share_one_shape(world, store_copy):
    log = json.loads(run(["log", "--json"], store_copy).stdout)
    show = json.loads(run(["show", "latest", "--json"], store_copy).stdout)
    for doc in (log[0], show):
        assert len(doc["id"]) == 64 and doc["short_id"] == doc["id"][:8]
        assert doc["time"].endswith("Z") and "full_id" not in doc
    assert log[0]["id"] == show["id"] and isinstance(log[0]["bytes_added"], int)
    assert log[0]["parent"] == log[1]["id"]  # full ids everywhere


def test_quiet_prints_nothing_on_success(world, store_copy, tmp_path):
    for args in invocations(world, tmp_path / "quiet"):
        r = run([*args, "-q"], store_copy)
        assert r.exit_code == 0, (args, r.output, r.stderr)
        assert r.stdout == "" and r.stderr == "", (args, r.stdout, r.stderr)


def test_quiet_failure_is_one_line(world, store_copy):
    r = run(["show", "nosuch", "-q"], store_copy)
    assert r.exit_code == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "nosuch" in r.stderr


@pytest.mark.parametrize("args,code", [
    (["show", "nosuch"], 1), (["log", "--limit", "0"], 2), (["cat", "latest", "recNOPE"], 1),
    (["export", "--format", "xml"], 2), (["tag", "latest", "bad,tag"], 2),
])
def test_json_errors_are_json_on_stdout(world, store_copy, args, code):
    r = run([*args, "--json"], store_copy)
    assert r.exit_code == code
    err = json.loads(r.stdout)["error"]
    assert err["exit_code"] == code and err["message"]


def test_no_store_is_a_json_error_with_exit_10(tmp_path):
    r = run(["log", "--json", "--store", str(tmp_path / "none")])
    assert r.exit_code == 10 and json.loads(r.stdout)["error"]["exit_code"] == 10


def test_format_json_is_a_synonym_of_json(world, store_copy):
    a = run(["diff", "--format", "json"], store_copy).stdout
    b = run(["diff", "--json"], store_copy).stdout
    assert json.loads(a) == json.loads(b)


def test_verbose_prints_debug_lines_on_stderr(world, store_copy, tmp_path):
    args = ["export", "--out", str(tmp_path / "v"), "--format", "ndjson"]
    assert "exporting snapshot" in run([*args, "-v"], store_copy).stderr
    assert "exporting snapshot" not in run(args, store_copy).stderr
    r = run(["snapshot", "-v", *LIMITS], store_copy)
    assert r.exit_code == 0 and "DEBUG" in r.stderr and world["emu"].token not in r.stderr + r.stdout


def test_emulator_json_is_one_line_a_script_can_read():
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "from snapstore.cli import main; main()", "emulator", "--json", "--bases", "1",
         "--tables", "1", "--records", "5", "--time-scale", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        doc = json.loads(proc.stdout.readline())
        assert doc["url"].startswith("http://127.0.0.1:") and doc["token"]
        assert doc["client_flags"] == ["--rate-limit-base", "250", "--rate-limit-token", "2500", "--penalty", "0.6"]
        assert doc["workspace_id"].startswith("wsp")  # what restore --to-workspace needs
        err = ""
        for line in proc.stderr:  # the lines for a person go to stderr
            err += line
            if line.startswith("Press Ctrl-C"):
                break
        assert "listening on" in err and f"restore --to-workspace {doc['workspace_id']}" in err
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert rest == "", rest


def test_color_always_never_and_auto(world, store_copy):
    assert "\x1b[" in run(["diff", "--color", "always"], store_copy).stdout
    assert "\x1b[" not in run(["diff", "--color", "never"], store_copy).stdout
    assert "\x1b[" not in run(["diff"], store_copy).stdout  # auto: not a terminal


# ------------------------------------------------------------------------------------------------
# global flags, pipes, the shapes of ids and times


@pytest.mark.parametrize("args", [
    ["--json", "log"], ["log", "--json"], ["-q", "--json", "log", "--last", "1"],
])
def test_shared_flags_go_before_or_after_the_verb(world, store_copy, args):
    r = run(args, store_copy)
    assert r.exit_code == 0, r.output
    assert isinstance(json.loads(r.stdout), list)


def test_store_and_password_file_go_before_or_after_the_verb(world, tmp_path):
    """restic takes its global flags anywhere: so does snapstore (--password-file was "No such
    option" after the verb)."""
    pw = tmp_path / "pw"
    pw.write_text("a password of the test\n")
    store = tmp_path / "enc"
    env = {"SNAPSTORE_PASSWORD": None, "SNAPSTORE_STORE": None}
    assert run(["init", "--store", str(store), "--password-file", str(pw)], env).exit_code == 0
    for args in (["--store", str(store), "--password-file", str(pw), "log", "--json"],
                 ["log", "--json", "--store", str(store), "--password-file", str(pw)],
                 ["--password-file", str(pw), "log", "--store", str(store), "--json"]):
        r = run(args, env)
        assert r.exit_code == 0 and json.loads(r.stdout) == [], (args, r.output)
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    assert run(["log", "--store", str(store), "--password-file", str(wrong)], env).exit_code == 12


def test_a_closed_pipe_ends_quietly(world, store_copy):
    """`snapstore log | head -1`: the reader went away; nothing on stderr (git, restic), exit 141
    as a process killed by SIGPIPE."""
    import os
    import subprocess
    import sys

    for args in (["log"], ["find", "a", "--all"], ["cat", "latest", world["rec"]]):
        r, w = os.pipe()
        os.close(r)  # the reader is gone before the first line is written
        proc = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", *args],
                              stdout=w, stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, **store_copy, "SNAPSTORE_CONFIG": ""})
        os.close(w)
        assert proc.stderr == "" and proc.returncode == 141, (args, proc.returncode, proc.stderr)


def test_no_store_says_the_init_command_that_works(tmp_path):
    r = run(["log", "--store", str(tmp_path / "none")])
    hint = r.stderr.split("`")[1]
    assert hint == f"snapstore init --store {tmp_path / 'none'}"
    assert run([*hint.split()[1:], "--no-encryption"]).exit_code == 0


def test_json_ids_are_full_and_times_whole_seconds(world, store_copy):
    import re

    when = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    show = json.loads(run(["show", "--json"], store_copy).stdout)
    log = json.loads(run(["log", "--json"], store_copy).stdout)
    assert show["parent"] == log[1]["id"] and len(show["parent"]) == 64
    assert when.fullmatch(show["time"]) and when.fullmatch(log[0]["time"]), (show["time"], log[0]["time"])
    diff = json.loads(run(["diff", "--json"], store_copy).stdout)
    assert when.fullmatch(diff["a"]["time"]) and len(diff["a"]["id"]) == 64


def _on_a_terminal(args: list[str], env: dict) -> str:
    """What ``snapstore ARGS`` prints on a pseudo-terminal (stdout), as a person sees it."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", "from snapstore.entry import run; run()", *args],
                            stdout=slave, stderr=subprocess.PIPE, env={**os.environ, **env, "SNAPSTORE_CONFIG": ""})
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_text_output_fits_70_columns_on_a_terminal(world, store_copy):
    for args in (["snapshot", *LIMITS], ["log"], ["stats"]):
        text = _on_a_terminal(args, store_copy)
        lines = text.splitlines()
        assert len(lines) >= 3, (args, text)
        # a line may pass 70 columns only as one word (a log file's path), never cut, so it copies whole
        wide = [x for x in lines if len(x) > 70 and len(x.split()) > 1]
        assert wide == [], (args, wide)
    log = _on_a_terminal(["log"], store_copy).splitlines()
    assert log[0].split()[:3] == ["id", "time", "(UTC)"] and log[-1].startswith("changes: +new ~changed -deleted")
    stats = _on_a_terminal(["stats"], store_copy)
    assert f"Operations ({world['base']})" in stats


def test_importing_the_same_folder_twice_warns(world, tmp_path):
    store = tmp_path / "imported"
    args = ["import", str(world["folder"]), "--store", str(store)]
    first = run(args, world["env"])
    assert first.exit_code == 0 and "warning" not in first.stderr, first.output
    again = run(args, world["env"])
    assert again.exit_code == 0 and "was imported before as snapshot" in again.stderr, again.output


def test_diff_json_names_changed_records_as_text_does(world, store_copy):
    d = json.loads(run(["diff", "--json"], store_copy).stdout)
    changed = [c for t in d["tables"] for c in t.get("changed", [])]
    assert changed and all(c.get("label") for c in changed), changed[:2]


def test_history_says_first_seen_not_created(world, store_copy):
    out = run(["history", world["rec"]], store_copy).stdout
    assert "v1 first seen" in out and "v1 created" not in out, out
