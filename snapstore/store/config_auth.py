"""A store's config.json, checked against what the store's keys and objects say before anything is
written.

config.json is a file anyone who can write the store folder or bucket can edit. Whether a store is
encrypted must not rest on it alone: removing its ``encryption`` block would make the next
snapshot write records in clear into an encrypted store. So a config is believed only where the
store agrees with it:

- a config that says *plain* is refused when the store holds key files (``keys/``), when its
  commit objects are sealed (not UTF-8 JSON), or when this machine has opened the store encrypted
  before (its cache folder holds ``config-auth``): all three are there without the password;
- a config that says *encrypted* carries ``auth``, an HMAC under the master key of every other
  field (crypto.KeyBox.config_auth), checked once the key is unwrapped: an altered field (format,
  pack size, levels, the encryption block, the store id) does not authenticate;
- a config without ``auth`` (written before configs were authenticated) is accepted only when the
  key that opened it says it was made before too, and this machine never saw the store with one;
  it is then given its ``auth`` (an upgrade; docs/FORMAT.md, *config.json*).

A refusal is :class:`ConfigAltered` (exit 1): one line, raised before any write.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from pathlib import Path

from snapstore.errors import StoreError
from snapstore.store.backend import BackendError, LocalBackend, ObjectMissing
from snapstore.store.catalog_home import cache_root, machine_dir
from snapstore.store.crypto import KeyBox
from snapstore.store.keys import KEYS_PREFIX, KeyFile

log = logging.getLogger("snapstore.store")

CONFIG_KEY = "config.json"
#: in this machine's cache folder for a store: the store was opened here encrypted (holds its auth)
MACHINE_MARK = "config-auth"
_REFUSED = "refusing to use the store (nothing was written)"


class ConfigAltered(StoreError):
    """config.json disagrees with the store's keys, objects or key: someone edited it."""


def encode_config(config: dict) -> bytes:
    return json.dumps(config, indent=1).encode() + b"\n"


def authenticated(config: dict, box: KeyBox) -> dict:
    """``config`` with its ``auth`` (what init writes for an encrypted store)."""
    return {**config, "auth": box.config_auth(config)}


def _sealed_commit(data: bytes) -> bool:
    """A commit object of a plain store is UTF-8 JSON (``{`` first); a sealed one starts with a
    random nonce, and 100+ random bytes are valid UTF-8 with negligible probability."""
    if not data.startswith(b"{"):
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _evidence_of_encryption(backend, store_id: str) -> str | None:
    """What says the store is encrypted, found without the password; None if nothing does."""
    if next(iter(backend.list(KEYS_PREFIX)), None) is not None:
        return "it holds key files (keys/)"
    commits = [key for key, _size in backend.list("snapshots")]
    for key in dict.fromkeys(commits[:1] + commits[-1:]):  # two looked at: one sealed is proof
        try:
            if _sealed_commit(backend.get(key)):
                return f"its snapshot object {key.rsplit('/', 1)[-1][:8]} is sealed"
        except ObjectMissing:
            continue
    if (cache_root() / store_id / MACHINE_MARK).exists():
        return "this machine opened it as an encrypted store before"
    return None


def check_claim(backend, config: dict, where: str) -> None:
    """Refuse a config that says *plain* for a store that is encrypted (before any password is asked)."""
    if "encryption" in config:
        return
    why = _evidence_of_encryption(backend, str(config.get("store_id")))
    if why is not None:
        raise ConfigAltered(f"{where}: config.json says the store is not encrypted, but {why}: config.json was "
                            f"altered; {_REFUSED}")


def check_auth(box: KeyBox, key_file: KeyFile | None, config: dict, where: str) -> bool:
    """Check an encrypted store's config against its master key. True: the config predates
    authentication and should be given its ``auth`` (see :func:`upgrade`)."""
    auth = config.get("auth")
    if auth is None:
        bound = key_file is not None and key_file.config_bound
        if bound or (cache_root() / str(config.get("store_id")) / MACHINE_MARK).exists():
            raise ConfigAltered(f"{where}: config.json has lost its authentication (auth), which "
                                f"{'the store key' if bound else 'this machine'} says it had: it was altered; {_REFUSED}")
        return True
    if not isinstance(auth, str) or not hmac.compare_digest(auth, box.config_auth(config)):
        raise ConfigAltered(f"{where}: config.json does not authenticate with the store's key (a field of it "
                            f"was changed); {_REFUSED}")
    return False


def upgrade(backend, config: dict, box: KeyBox, where: str) -> dict:
    """Give a config written before authentication its ``auth``, in place (local: a temp file
    renamed over config.json; S3: a PUT). Older snapstore versions ignore the new key. A store
    that cannot be written keeps its config, and is upgraded by the first writable open."""
    new = authenticated(config, box)
    try:
        if isinstance(backend, LocalBackend):
            _replace_file(backend.root / CONFIG_KEY, encode_config(new))
        else:
            backend.overwrite(CONFIG_KEY, encode_config(new))
    except (OSError, BackendError) as e:
        log.info("%s: config.json could not be given its authentication now (%s)", where, e)
        return config
    log.info("%s: config.json is now authenticated under the store's key", where)
    return new


def remember(config: dict) -> None:
    """Note on this machine that the store is encrypted (a later plain or auth-less config of it
    is refused here, whatever the bucket says)."""
    try:
        mark = machine_dir(config["store_id"]) / MACHINE_MARK
        if not mark.exists():
            _replace_file(mark, (config.get("auth") or "").encode() + b"\n")
    except OSError as e:  # a read-only home: the store's own evidence still holds
        log.info("could not note the store as encrypted in the cache folder: %s", e)


def _replace_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
