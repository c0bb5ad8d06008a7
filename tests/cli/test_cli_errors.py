"""Every failure is one line on stderr and a known exit code, never a traceback, and leaves the store
byte-identical. Runs the real `snapstore` group, in-process and as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cliworld import LIMITS, run, two_snapshots

from snapstore.errors import (
    EXIT_ERROR,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_NO_STORE,
    EXIT_OK,
    EXIT_USAGE,
    os_error_message,
)


def digest(path: Path) -> dict[str, str]:
    """Every file of a folder and the SHA-256 of its bytes."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def one_line(r) -> str:
    """The failure's stderr: exactly one line, and no traceback anywhere."""
    assert "Traceback" not in r.output and "Traceback" not in r.stderr, r.output
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An emulator and a store holding two snapshots of it (module-wide: tests copy the store)."""
    with two_snapshots(tmp_path_factory.mktemp("errors")) as w:
        yield w


@pytest.fixture
def store(world, tmp_path):
    dest = tmp_path / "store"
    shutil.copytree(world["store"], dest)
    return dest


# ------------------------------------------------------------------------------------------------
# bad input: a table of invocations across every command

BAD = [
    # (args, exit code, words the line must hold)
    (["export", "--workers", "100000"], EXIT_USAGE, "--workers"),
    (["export", "--workers", "99999999999"], EXIT_USAGE, "--workers"),
    (["export", "--workers", "0"], EXIT_USAGE, "--workers"),
    (["export", "--workers", "many"], EXIT_USAGE, "--workers"),
    (["export", "--format", "xml"], EXIT_USAGE, "unknown export format"),
    (["export", "nope"], EXIT_ERROR, "no snapshot named"),
    (["export", "latest~99"], EXIT_ERROR, ""),
    (["export", "--bogus"], EXIT_USAGE, "--bogus"),
    (["prune", "--max-unused", "banana"], EXIT_USAGE, "--max-unused"),
    (["prune", "--max-unused", "150%"], EXIT_USAGE, "--max-unused"),
    (["prune", "--max-unused", "-1"], EXIT_USAGE, "--max-unused"),
    (["prune", "--repack-threshold", "2"], EXIT_USAGE, "--repack-threshold"),
    (["forget", "--keep-last", "-1"], EXIT_USAGE, "--keep-last"),
    (["forget", "--keep-last", "banana"], EXIT_USAGE, "--keep-last"),
    (["forget", "--keep-daily", "99999999999999"], EXIT_USAGE, "--keep-daily"),
    (["forget", "--keep-within", "forever"], EXIT_USAGE, "--keep-within"),
    (["forget", "--keep-within-daily", "3x"], EXIT_USAGE, "--keep-within-daily"),
    (["forget"], EXIT_USAGE, "empty policy"),
    (["forget", "--keep-last", "1", "--max-unused", "lots", "--prune"], EXIT_USAGE, "--max-unused"),
    (["forget", "deadbeef"], EXIT_ERROR, "deadbeef"),
    (["verify", "--read-data", "--read-data-subset", "10%"], EXIT_USAGE, "--read-data"),
    (["verify", "--read-data-subset", "0%"], EXIT_USAGE, "--read-data-subset"),
    (["verify", "--read-data-subset", "3/2"], EXIT_USAGE, "--read-data-subset"),
    (["verify", "--read-data-subset", "half"], EXIT_USAGE, "--read-data-subset"),
    (["stats", "--last", "0"], EXIT_USAGE, "--last"),
    (["stats", "--last", "x"], EXIT_USAGE, "--last"),
    (["log", "--limit", "0"], EXIT_USAGE, "--limit"),
    (["log", "--last", "-5"], EXIT_USAGE, "--limit"),
    (["show", "nope"], EXIT_ERROR, "nope"),
    (["show", "latest~100"], EXIT_ERROR, ""),
    (["diff", "nope", "latest"], EXIT_ERROR, "nope"),
    (["history", "recNOPE"], EXIT_ERROR, "recNOPE"),
    (["tag", "nope", "x"], EXIT_ERROR, "nope"),
    (["tag"], EXIT_USAGE, "SNAPSHOT"),
    (["snapshot", "--workers", "0"], EXIT_USAGE, "--workers"),
    (["snapshot", "--workers", "100000"], EXIT_USAGE, "--workers"),
    (["snapshot", "--rate-limit-base", "0"], EXIT_USAGE, "--rate-limit-base"),
    (["snapshot", "--penalty", "-3"], EXIT_USAGE, "--penalty"),
    (["restore", "latest"], EXIT_USAGE, "--to-base"),
    (["restore", "./no/such/folder", "--to-base", "appX"], EXIT_USAGE, "does not exist"),
    (["restore", "latest", "--revert", "--base", "appX"], EXIT_USAGE, "--revert"),
    (["restore", "latest", "--record", "recX", "--to-base", "appX"], EXIT_USAGE, "--record"),
    (["import", "./no/such/folder"], EXIT_USAGE, "no/such/folder"),
    (["demo", "--records", "0"], EXIT_USAGE, "--records"),
    (["emulator", "--port", "70000"], EXIT_USAGE, "--port"),
    (["nosuchverb"], EXIT_USAGE, "nosuchverb"),
    # numbers that are not numbers, sizes and durations past any use
    (["snapshot", "--rate-limit-base", "nan"], EXIT_USAGE, "--rate-limit-base"),
    (["snapshot", "--rate-limit-base", "inf"], EXIT_USAGE, "--rate-limit-base"),
    (["snapshot", "--rate-limit-base", "1e400"], EXIT_USAGE, "--rate-limit-base"),
    (["check", "--rate-limit-token", "nan"], EXIT_USAGE, "--rate-limit-token"),
    (["snapshot", "--penalty", "nan"], EXIT_USAGE, "--penalty"),
    (["prune", "--repack-threshold", "nan"], EXIT_USAGE, "--repack-threshold"),
    (["snapshot", "--full-every", "99999999999999999999d"], EXIT_USAGE, "--full-every"),
    (["prune", "--max-unused", "99999999999999999999999T"], EXIT_USAGE, "--max-unused"),
    (["emulator", "--time-scale", "nan"], EXIT_USAGE, "--time-scale"),
    # names: an empty one, an unknown one (exit 2 in every verb), a revert nobody can confirm
    (["export", "--base", ""], EXIT_USAGE, "--base '' names nothing"),
    (["export", "--table", ","], EXIT_USAGE, "--table '' names nothing"),
    (["export", "--base", "Nope"], EXIT_USAGE, "no base 'Nope' in this store (bases: "),
    (["snapshot", "--base", "Nope", "-q"], EXIT_USAGE, "no base 'Nope' visible to this token (bases: "),
    (["check", "--base", "Nope"], EXIT_USAGE, "no base 'Nope' visible to this token (bases: "),
    (["log", "--base", "Nope"], EXIT_USAGE, "no base 'Nope' in this store (bases: "),
    (["restore", "latest", "--revert", "--base", "Operations", "--table", "Tasks"], EXIT_USAGE, "add --yes"),
    (["export", "--out", "/nonexistent-snapstore/dir"], EXIT_ERROR, "no such file or folder (/nonexistent-snapstore)"),
]


@pytest.mark.parametrize("args,code,words", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_one_line_and_an_exit_code(world, store, args, code, words):
    before = digest(store)
    r = run(args, {**world["env"], "SNAPSTORE_STORE": str(store)})
    assert r.exit_code == code, (r.exit_code, r.output)
    line = one_line(r)
    assert line.startswith("Error:") and words in line, line
    assert digest(store) == before


def test_export_creates_its_folder_but_never_its_parents():
    assert not Path("/nonexistent-snapstore").exists()


def test_the_bad_input_table_covers_every_command():
    assert len(BAD) >= 60
    verbs = {a[0] for a, _, _ in BAD}
    assert {"export", "prune", "forget", "verify", "stats", "log", "show", "diff", "history", "tag",
            "snapshot", "restore", "import", "demo", "emulator"} <= verbs


def test_json_errors_are_a_json_object_on_stdout(world, tmp_path):
    r = run(["log", "--json", "--store", str(tmp_path / "none")], world["env"])
    assert r.exit_code == EXIT_NO_STORE
    doc = json.loads(r.stdout)
    assert doc["error"]["exit_code"] == EXIT_NO_STORE and "no store at" in doc["error"]["message"]
    assert one_line(r).startswith("Error: no store at")


# ------------------------------------------------------------------------------------------------
# exit codes a script relies on


def test_no_store_is_exit_10_for_every_reading_verb(world, tmp_path):
    missing = str(tmp_path / "nothing-here")
    for args in (["log"], ["show"], ["diff"], ["export"], ["verify"], ["stats"], ["prune"],
                 ["forget", "--keep-last", "1"], ["tag", "latest", "x"], ["rebuild-catalog"], ["unlock"]):
        r = run([*args, "--store", missing], world["env"])
        assert r.exit_code == EXIT_NO_STORE, (args, r.output)
        assert "no store at" in one_line(r)
    assert not Path(missing).exists()


def test_a_locked_store_is_exit_11_and_untouched(world, store):
    from snapstore.store import Store

    holder = Store.open(store).begin_snapshot(command="another snapshot")
    try:
        before = digest(store)
        for args in (["snapshot", *LIMITS], ["prune"], ["forget", "--keep-last", "1"]):
            r = run([*args, "--store", str(store)], world["env"])
            assert r.exit_code == EXIT_LOCKED, (args, r.output)
            assert "another snapshot" in one_line(r)
            assert args[0] != "snapshot" or "snapstore unlock" in one_line(r)
        assert digest(store) == before
    finally:
        holder.abandon()


def test_an_export_missing_attachments_exits_3(world, store, tmp_path):
    """A script must be able to tell an incomplete export from a complete one."""
    from snapstore.store import Store

    s = Store.open(store)
    # drop every stored attachment file: the export still writes the records, and says what is missing
    with s.catalog.write() as con:
        con.execute("DELETE FROM attachment")
    r = run(["export", "--store", str(store), "--out", str(tmp_path / "out"), "--format", "ndjson"], world["env"])
    assert r.exit_code == EXIT_INCOMPLETE, r.output
    assert "incomplete" in r.stderr.splitlines()[-1]
    assert list((tmp_path / "out").glob("airtable_backup_*"))


# ------------------------------------------------------------------------------------------------
# paths, disks, catalogs


def test_unwritable_output_paths_are_one_line(world, store, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for args in (["export", "--out", str(afile / "sub")], ["export", "--out", "/proc/nope"]):
        r = run([*args, "--store", str(store)], world["env"])
        assert r.exit_code == EXIT_ERROR, r.output
        line = one_line(r)
        assert "exporting to" in line and ("not a folder" in line or "no such file" in line), line
    r = run(["init", "--store", str(afile / "sub")], world["env"])
    assert r.exit_code == EXIT_ERROR and "not a folder" in one_line(r)


def test_a_full_disk_during_export_removes_its_folder(world, store, tmp_path, monkeypatch):
    import errno

    import snapstore_exporters.ndjson_writer as nd

    real = nd.NdjsonWriter.write

    def full(self, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nd.NdjsonWriter, "write", full)
    out = tmp_path / "out"
    r = run(["export", "--store", str(store), "--out", str(out), "--format", "ndjson", "--workers", "1"],
            world["env"])
    monkeypatch.setattr(nd.NdjsonWriter, "write", real)
    assert r.exit_code == EXIT_ERROR
    assert "no space left on device" in one_line(r)
    assert list(out.iterdir()) == []


def test_a_full_disk_during_snapshot_leaves_the_store_as_it_was(world, store, monkeypatch):
    import errno

    from snapstore.store.backend import LocalBackend

    def full(self, key, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.root / key))

    world["emu"].churn(seed=7, edit_share=0.2)
    monkeypatch.setattr(LocalBackend, "put", full)
    before = {k: v for k, v in digest(store).items() if not k.startswith(("logs/", "catalog"))}
    r = run(["snapshot", "--store", str(store), *LIMITS], world["env"])
    assert r.exit_code == EXIT_ERROR, r.output
    assert "no space left on device" in one_line(r)
    after = {k: v for k, v in digest(store).items() if not k.startswith(("logs/", "catalog"))}
    assert after == before


def test_stale_partial_folders_of_killed_exports_are_removed(world, store, tmp_path):
    out = tmp_path / "out"
    (out / ".snapstore-export-deadbeef-0000.partial" / "data").mkdir(parents=True)
    r = run(["export", "--store", str(store), "--out", str(out), "--format", "ndjson"], world["env"])
    assert r.exit_code == EXIT_OK, r.output
    assert [p.name.startswith("airtable_backup_") for p in out.iterdir()] == [True]


def test_a_running_exports_partial_folder_is_left_alone(tmp_path):
    from snapstore_exporters import partial

    running = partial.PartialFolder(tmp_path, "abc")
    try:
        assert partial.remove_stale(tmp_path) == []
        assert running.path.exists()
    finally:
        running.discard()
    assert not running.path.exists()


def test_a_catalog_damaged_in_the_middle_is_rebuilt(world, store, tmp_path):
    """DuckDB checks a block's checksum only when it reads it: damage found mid-command is repaired
    once, with one line saying so, and the command's answer is the intact store's."""
    from snapstore.store import Store

    good = run(["export", "--store", str(store), "--out", str(tmp_path / "good"), "--format", "ndjson"],
               world["env"])
    assert good.exit_code == EXIT_OK
    cat = Store.open(store).catalog.path  # (an encrypted store's is in the machine's cache folder)
    size = cat.stat().st_size
    damaged = None
    # DuckDB's blocks are 256 KiB; the first ones hold headers and metadata, read at open (that
    # damage is rebuilt on open, tested in test_store.py): look for a data block the reads need
    for off in [*range(524288, size, 16384), *range(262144, 524288, 65536)]:
        shutil.copy(cat, tmp_path / "orig.duckdb")
        with open(cat, "r+b") as f:
            f.seek(off)
            f.write(b"\xaa" * 4096)
        r = run(["verify", "--store", str(store)], world["env"])
        if "was damaged" in r.stderr:
            damaged = r
            break
        shutil.copy(tmp_path / "orig.duckdb", cat)
        for p in cat.parent.glob("catalog.duckdb.corrupt-*"):
            p.unlink()
    if damaged is None:
        pytest.skip("no block of this catalog is read lazily")
    assert damaged.exit_code == EXIT_OK and "Traceback" not in damaged.output
    assert list(cat.parent.glob("catalog.duckdb.corrupt-*"))
    assert len(Store.open(store).list_snapshots()) == 2


def test_os_errors_read_as_a_sentence():
    import errno

    msg = os_error_message(OSError(errno.EROFS, "Read-only file system", "/data/store/locks/x"))
    assert msg == "read-only file system (/data/store/locks/x); use a writable location"


def test_a_bug_is_one_line_with_the_traceback_in_a_file(world, store, tmp_path, monkeypatch):
    import snapstore.ops.stats as stats

    def boom(_store):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(stats, "stats", boom)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    r = run(["stats", "--store", str(store)], {**world["env"], "XDG_STATE_HOME": str(tmp_path / "state")})
    assert r.exit_code == EXIT_ERROR
    line = one_line(r)
    assert "unexpected ZeroDivisionError (a bug in snapstore): oops" in line and "SNAPSTORE_DEBUG=1" in line
    crash = list((tmp_path / "state" / "snapstore" / "crashes").glob("*.log"))
    assert len(crash) == 1 and "ZeroDivisionError" in crash[0].read_text()
    assert world["emu"].token not in crash[0].read_text()


# ------------------------------------------------------------------------------------------------
# the real process: console script, signals


def _cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    code = "from snapstore.entry import run; run()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_the_console_script_exits_with_the_codes(world, tmp_path):
    p = _cli("log", "--store", str(tmp_path / "none"))
    assert p.returncode == EXIT_NO_STORE and p.stderr.strip().startswith("Error: no store at")
    p = _cli("export", "--workers", "100000", "--store", str(world["store"]))
    assert p.returncode == EXIT_USAGE and "Traceback" not in p.stderr


def test_read_only_store_refuses_writes_in_one_line(world, store):
    """A store on a read-only file system (simulated: a bind mount is not available everywhere)."""
    import errno

    from snapstore.store import lock

    def ro(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", str(store / "locks" / "writer.json"))

    before = digest(store)
    for args in (["forget", "--keep-last", "1"], ["prune"], ["tag", "latest", "x"], ["rebuild-catalog"]):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lock.os, "open", ro)
            r = run([*args, "--store", str(store)], world["env"])
        assert r.exit_code == EXIT_ERROR, (args, r.output)
        assert "read-only file system" in one_line(r)
    assert digest(store) == before
    assert run(["log", "--store", str(store)], world["env"]).exit_code == EXIT_OK


def test_interrupted_is_130(world, store, monkeypatch):
    import snapstore_exporters.export as E

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "export_snapshot", stop)
    r = run(["export", "--store", str(store)], world["env"])
    assert r.exit_code == EXIT_INTERRUPTED and one_line(r).startswith("interrupted:")


# ------------------------------------------------------------------------------------------------
# more bad input: the environment, files, formats


def test_a_bad_interrupt_grace_is_one_line_for_every_command(world):
    for args in (["log"], ["--help"], ["export", "--help"]):
        p = _cli(*args, env={**world["env"], "SNAPSTORE_INTERRUPT_GRACE": "abc"})
        assert p.returncode == EXIT_USAGE, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "SNAPSTORE_INTERRUPT_GRACE='abc'" in lines[0] and "Traceback" not in p.stderr


def test_a_nul_byte_in_a_config_path_is_one_line(world, store, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[export]\nout = "/tmp/a\\u0000b"\n')
    r = run(["export", "--store", str(store)], {**world["env"], "SNAPSTORE_CONFIG": str(cfg)})
    assert r.exit_code == EXIT_USAGE and "NUL byte" in one_line(r)


def test_export_format_json_is_a_file_format_not_json_output(world, store):
    """`--format json` chooses the export's files: its errors are lines on stderr, not JSON."""
    r = run(["export", "nope", "--format", "json", "--store", str(store)], world["env"])
    assert r.exit_code == EXIT_ERROR and r.stdout == "" and "no snapshot named" in one_line(r)


def test_dry_runs_need_no_lock_on_a_read_only_store(world, store):
    """forget -n and prune -n write nothing, so a store they cannot lock is no reason to refuse."""
    import errno

    from snapstore.store import lock

    def ro(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", str(store / "locks" / "writer.json"))

    before = digest(store)
    for args in (["forget", "--keep-last", "1", "-n"], ["prune", "-n"]):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(lock.os, "open", ro)
            r = run([*args, "--store", str(store)], world["env"])
        assert r.exit_code == EXIT_OK, (args, r.output)
    assert digest(store) == before


def _full(kind: str):
    if kind == "duckdb":
        import duckdb

        return duckdb.IOException('IO Error: Could not write file "catalog.rebuild.duckdb.wal": No space left on device')
    import sqlite3

    return sqlite3.OperationalError("database or disk is full")


def test_a_full_disk_rebuilding_the_catalog_is_one_line(world, store, monkeypatch):
    import snapstore.store.store as store_mod

    real = store_mod.Catalog

    def catalog(path, *a, **k):
        if "rebuild" in str(path):
            raise _full("duckdb")
        return real(path, *a, **k)

    monkeypatch.setattr(store_mod, "Catalog", catalog)
    r = run(["rebuild-catalog", "--store", str(store)], world["env"])
    assert r.exit_code == EXIT_ERROR
    line = one_line(r)
    assert "no space left on device" in line and "a bug" not in line, line


def test_a_full_disk_in_the_sqlite_export_is_one_line(world, store, tmp_path, monkeypatch):
    import snapstore_exporters.sqlite_writer as sw

    def full(self, payload):
        raise _full("sqlite")

    monkeypatch.setattr(sw.SqliteWriter, "write", full)
    out = tmp_path / "out"
    r = run(["export", "--store", str(store), "--out", str(out), "--format", "sqlite", "--workers", "1"], world["env"])
    assert r.exit_code == EXIT_ERROR
    line = one_line(r)
    assert "no space left on device" in line and "a bug" not in line, line


def test_a_full_disk_under_the_restore_journal_is_one_line(world, store, monkeypatch):
    import snapstore.restore.journal as jr

    def full(self, *_a, **_k):
        raise _full("sqlite")

    monkeypatch.setattr(jr.RestoreJournal, "set", full)
    base = world["emu"].workspace.bases[0].id
    r = run(["restore", "latest", "--store", str(store), "--base", base, "--to-base", base, *LIMITS], world["env"])
    assert r.exit_code == EXIT_ERROR
    line = one_line(r)
    assert "no space left on device" in line and "a bug" not in line, line


def test_export_warnings_are_one_line_per_table_and_kind(world, store, tmp_path):
    """Ordinary #ERROR! and NaN formula values: a line per table and kind, not one per record and
    format (180 lines scrolled the result away); the export's reports/ keep every record."""
    r = run(["export", "--store", str(store), "--out", str(tmp_path), "--format", "sqlite,parquet"], world["env"])
    assert r.exit_code == EXIT_OK, r.output
    warnings = [x for x in r.stderr.splitlines() if "warning:" in x]
    assert warnings, r.stderr
    heads = [w.split(" (")[0] for w in warnings]  # "warning: TABLE: KIND"
    assert len(heads) == len(set(heads)) and len(warnings) <= 8, warnings
    assert all("each listed in the export's reports/" in w for w in warnings), warnings
