"""An encrypted store stays encrypted: its config.json is authenticated under the master key, and a
config that disagrees with the store's keys, objects or key is refused in one line (exit 1) before
anything is written, with or without the password, locally and on S3."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_run import LIMITS, SCALE, run
from conftest import TEST_PASSWORD
from plaintext import plaintext_hits, tree, workspace_needles
from storegen import BASE, TABLE, make_records, snapshot

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_ERROR
from snapstore.store import Store, keys

WS = dict(seed=23, bases=1, tables_per_base=2, records_per_table=60, attachment_share=0.3)


def one_line(r) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.output
    assert "a bug" not in lines[0] and "Traceback" not in r.output
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An encrypted store made by the CLI with one snapshot; the workspace then churned, so a
    snapshot that got through would write new records, names and attachments."""
    root = tmp_path_factory.mktemp("config-auth")
    ws = generate_workspace(**WS)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url}
        store = root / "enc"
        assert run(["init", "--store", str(store)], **env).exit_code == 0
        r = run(["snapshot", "--store", str(store), *LIMITS], **env)
        assert r.exit_code == 0, r.output
        emu.churn(seed=3, edit_share=0.3, add_share=0.2)
        yield {"ws": ws, "env": env, "store": store, "root": root}


def _config(store) -> dict:
    return json.loads((store / "config.json").read_text())


def _write_config(store, config: dict) -> None:
    (store / "config.json").write_text(json.dumps(config, indent=1) + "\n")


def strip_encryption(c):
    c.pop("encryption")


def strip_encryption_and_auth(c):
    c.pop("encryption")
    c.pop("auth")


def strip_auth(c):
    c.pop("auth")


TAMPERS = {
    "encryption removed": strip_encryption,
    "encryption and auth removed": strip_encryption_and_auth,
    "auth removed": strip_auth,
    "format version": lambda c: c.update(version=3),
    "pack size (chunking)": lambda c: c.update(pack_size=1024),
    "zstd level": lambda c: c.update(zstd_level=1),
    "aead named": lambda c: c["encryption"].update(aead="none"),
    "kdf named": lambda c: c["encryption"].update(kdf="none"),
    "store id": lambda c: c.update(store_id="0" * 32),
    "serializer": lambda c: c.update(canon="orjson-sorted-v1", hash="md5"),
    "a field added": lambda c: c.update(plain=True),
}
#: tampers that make config.json say "plain": refused even without the password
SAYS_PLAIN = {"encryption removed", "encryption and auth removed"}


def _assert_refused(world, store, before, r, *, code=EXIT_ERROR) -> None:
    assert r.exit_code == code, r.output
    line = one_line(r)
    if code == EXIT_ERROR:
        assert "config.json" in line and "nothing was written" in line, line
    after = tree(store)
    new = {k: v for k, v in after.items() if before.get(k) != v}
    assert plaintext_hits(new, workspace_needles(world["ws"])) == set()
    assert after == before


@pytest.mark.parametrize("what", list(TAMPERS))
@pytest.mark.parametrize("password", [True, False], ids=["password", "no-password"])
def test_an_altered_config_is_refused_and_nothing_is_written(world, tmp_path, what, password):
    """Each on a copy of the store, opened by a machine that never saw it (a fresh cache folder):
    only the store's own keys and objects can tell."""
    store = tmp_path / "enc"
    shutil.copytree(world["store"], store)
    config = _config(store)
    assert "auth" in config and "encryption" in config
    TAMPERS[what](config)
    _write_config(store, config)
    before = tree(store)
    env = {**world["env"], "SNAPSTORE_CACHE": str(tmp_path / "fresh-cache")}
    if not password:
        env["SNAPSTORE_PASSWORD"] = None
    r = run(["snapshot", "--store", str(store), *LIMITS], **env)
    # without the password, a config that still says "encrypted" asks for it (exit 2): still nothing written
    _assert_refused(world, store, before, r, code=EXIT_ERROR if password or what in SAYS_PLAIN else 2)
    if password or what in SAYS_PLAIN:
        assert run(["log", "--store", str(store)], **env).exit_code == EXIT_ERROR


def test_a_plain_config_over_sealed_commits_is_refused_without_keys(world, tmp_path):
    """Key files deleted as well: the sealed commit objects still tell."""
    store = tmp_path / "enc"
    shutil.copytree(world["store"], store)
    shutil.rmtree(store / "keys")
    config = _config(store)
    strip_encryption_and_auth(config)
    _write_config(store, config)
    before = tree(store)
    env = {**world["env"], "SNAPSTORE_CACHE": str(tmp_path / "fresh-cache"), "SNAPSTORE_PASSWORD": None}
    r = run(["snapshot", "--store", str(store), *LIMITS], **env)
    _assert_refused(world, store, before, r)
    assert "sealed" in one_line(r)


def test_the_machine_that_saw_the_store_encrypted_refuses_a_plain_config(world, tmp_path):
    """Keys and commits gone too (only packs left): the cache folder of a machine that opened the
    store remembers it is encrypted."""
    store = tmp_path / "enc"
    shutil.copytree(world["store"], store)
    assert run(["log", "--store", str(store)], **world["env"]).exit_code == 0  # this machine sees it
    shutil.rmtree(store / "keys")
    shutil.rmtree(store / "snapshots")
    config = _config(store)
    strip_encryption_and_auth(config)
    _write_config(store, config)
    before = tree(store)
    r = run(["snapshot", "--store", str(store), *LIMITS], **{**world["env"], "SNAPSTORE_PASSWORD": None})
    _assert_refused(world, store, before, r)
    assert "this machine" in one_line(r)


def test_an_untouched_store_still_snapshots(world, tmp_path):
    store = tmp_path / "enc"
    shutil.copytree(world["store"], store)
    r = run(["snapshot", "--store", str(store), *LIMITS], **world["env"])
    assert r.exit_code == 0, r.output
    assert len(Store.open(store, password=TEST_PASSWORD).list_snapshots()) == 2


def _legacy(path, fmt: int) -> Store:
    """An encrypted store as snapstore wrote it before configs were authenticated: no ``auth`` in
    config.json, a key file that does not say the config is bound."""
    st = Store.init(path, password=TEST_PASSWORD, format_version=fmt)
    snapshot(st, make_records(40))
    config = dict(st.config)
    config.pop("auth")
    _write_config(path, config)
    old = keys.list_keys(st.backend)
    keys.write_key(st.backend, st.box, TEST_PASSWORD, config_bound=False)
    keys.write_key(st.backend, st.box, "another password", config_bound=False)
    for kf in old:
        st.backend.delete(keys.key_key(kf.name))
    return st


@pytest.mark.parametrize("fmt", [2, 3, 4])
def test_an_older_encrypted_store_is_read_and_given_an_authenticated_config(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-a"))
    _legacy(tmp_path / "s", fmt)
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-b"))  # a machine that never saw it
    st = Store.open(tmp_path / "s", password=TEST_PASSWORD)
    assert len(list(st.records("latest", BASE, TABLE))) == 40
    config = _config(tmp_path / "s")
    assert config["auth"] == st.box.config_auth(config) and config["version"] == fmt
    assert [k.config_bound for k in keys.list_keys(st.backend) if k.unwrap(TEST_PASSWORD)] == [True]
    Store.open(tmp_path / "s", password="another password")  # its key is rebound on its first use
    assert [k.config_bound for k in keys.list_keys(st.backend) if k.unwrap("another password")] == [True]
    assert len(keys.list_keys(st.backend)) == 2
    snapshot(st, make_records(50))
    # upgraded: from now on, a stripped auth or an altered field is refused (on another machine too)
    monkeypatch.setenv("SNAPSTORE_CACHE", str(tmp_path / "machine-c"))
    for tamper in (strip_auth, lambda c: c.update(pack_size=4096)):
        c = dict(config)
        tamper(c)
        _write_config(tmp_path / "s", c)
        with pytest.raises(Exception, match="config.json") as e:
            Store.open(tmp_path / "s", password=TEST_PASSWORD)
        assert e.value.exit_code == EXIT_ERROR
    _write_config(tmp_path / "s", config)
    assert len(Store.open(tmp_path / "s", password=TEST_PASSWORD).list_snapshots()) == 2


def test_a_plain_store_is_unaffected(tmp_path):
    st = Store.init(tmp_path / "p")
    snapshot(st, make_records(10))
    assert "auth" not in _config(tmp_path / "p")
    assert not Store.open(tmp_path / "p").encrypted


def test_s3_an_altered_config_is_refused_through_a_current_cache(s3_env, tmp_path, monkeypatch):
    """The attacker writes the bucket; the machine's cache is current (it snapshotted just before)."""
    from snapstore.store.s3 import S3Backend

    url = s3_env()
    ws = generate_workspace(**WS)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu:
        env = {"AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url}
        assert run(["init", "--store", url], **env).exit_code == 0
        assert run(["snapshot", "--store", url, *LIMITS], **env).exit_code == 0
        emu.churn(seed=5, edit_share=0.3, add_share=0.2)
        backend = S3Backend.from_url(url)
        original = backend.get("config.json")

        def bucket() -> dict[str, bytes]:
            prefixes = ("keys", "packs", "objects", "snapshots", "index", "tags", "locks", "feed")
            return {"config.json": backend.get("config.json"),
                    **{k: backend.get(k) for p in prefixes for k, _s in backend.list(p)}}

        for what in ("encryption removed", "encryption and auth removed", "pack size (chunking)", "auth removed"):
            config = json.loads(original)
            TAMPERS[what](config)
            backend.overwrite("config.json", json.dumps(config, indent=1).encode())
            before = bucket()
            for password in (True, False):
                if not password and what not in SAYS_PLAIN:
                    continue
                r = run(["snapshot", "--store", url, *LIMITS], **env, **({} if password else {"SNAPSTORE_PASSWORD": None}))
                assert r.exit_code == EXIT_ERROR, (what, r.output)
                assert "config.json" in one_line(r)
                after = bucket()
                new = {k: v for k, v in after.items() if before.get(k) != v}
                assert plaintext_hits(new, workspace_needles(ws)) == set()
                assert after == before, what
        backend.overwrite("config.json", original)
        assert run(["snapshot", "--store", url, *LIMITS], **env).exit_code == 0
