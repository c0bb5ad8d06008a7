"""Key files: an encrypted store's master key, wrapped by keys derived from passwords (restic's
``keys/``). Several key files may wrap the same master key: one per password or person.

``keys/<name>`` (``name`` = SHA-256 of the file's bytes) is JSON::

    {"created", "username", "hostname", "kdf": "scrypt", "N", "r", "p",
     "salt": base64 (64 bytes), "data": base64 (nonce | AES-256-GCM(master key JSON) | tag)}

The wrapping key is ``scrypt(password, salt, N, r, p, 32 bytes)``. Deriving it costs ~0.13 s and
32 MiB at N = 2^15 (measured here), so one process that opens a store many times (tests, a
migrate, export workers) derives it once: :func:`derive` caches derived keys in memory, keyed by
the key file's salt and parameters and a hash of the password. Nothing here touches the disk but
the key files, and nothing here prompts: the caller (the CLI) asks for the password.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from snapstore.errors import StoreError, UsageError, WrongPassword
from snapstore.store.crypto import NONCE, KeyBox

KEYS_PREFIX = "keys"
#: in a key file's sealed master key JSON: the store's config.json is authenticated (``auth``)
CONFIG_BOUND = "authenticated"
#: scrypt's cost. restic calibrates each new key to 500 ms within 60 MiB: N grows while N*r*128
#: fits the memory (so N = 2^15, 32 MiB, at r = 8), then p grows until the time is spent. A new key
#: here gets the same: N = 2^15, r = 8, and p calibrated to :data:`KDF_SECONDS` (one derivation at
#: p = 1 measured 0.13 s here, so p = 4). N = 2^15, r = 8, p = 1 is the floor a key file must meet.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
MAX_P = 16
SALT_BYTES = 64
_MIN_N = 1 << 15
_MAX_N = 1 << 20
#: Seconds a new key's derivation should take (restic's 0.5 s); ``SNAPSTORE_KDF_SECONDS`` may set it
#: (0: the floor, p = 1; the test suite does so: it makes hundreds of keys).
KDF_SECONDS = 0.5
_calibrated: dict[float, int] = {}

_derived: dict[tuple[bytes, int, int, int, bytes], bytes] = {}

#: How the library gets a password it was not given: ``source(location, new)`` returns one or
#: raises (for a ``new`` store it may return None: the store is made plain). None (the library
#: alone): a password must be passed. The CLI installs its own (environment, --password-file,
#: terminal prompt): snapstore/commands/password.py.
password_source: Callable[[str, bool], str | None] | None = None


class PasswordNeeded(UsageError):
    """An encrypted store (or a new one) needs a password and none was given (exit 2)."""


def ask_password(location: str, *, new: bool = False) -> str | None:
    pw = password_source(location, new) if password_source is not None else None
    if pw is None and not new:
        raise PasswordNeeded(f"the store at {location} is encrypted: pass its password (password=...)")
    return pw


def derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The 32-byte wrapping key; cached in memory for this process."""
    if n < _MIN_N or r < 1 or p < 1:
        raise StoreError(f"key file scrypt parameters N={n} r={r} p={p} are below snapstore's minimum")
    if n > _MAX_N or r > 32 or p > 4 * MAX_P:  # a hostile key file must not hang or exhaust the machine
        raise StoreError(f"key file scrypt parameters N={n} r={r} p={p} are above snapstore's maximum")
    pw = password.encode()
    cache_key = (salt, n, r, p, hashlib.sha256(pw).digest())
    k = _derived.get(cache_key)
    if k is None:
        k = _derived[cache_key] = hashlib.scrypt(pw, salt=salt, n=n, r=r, p=p, maxmem=256 << 20, dklen=32)
    return k


@dataclass
class KeyFile:
    name: str  # SHA-256 of the file's bytes, hex
    doc: dict
    #: set by a successful unwrap: the key was made for a store whose config.json is authenticated
    #: (its sealed plaintext says ``"config": "authenticated"``), so a config without ``auth`` is
    #: one that was stripped, not one written before configs were authenticated
    config_bound: bool = False

    @property
    def id(self) -> str:
        return self.name[:8]

    def unwrap(self, password: str) -> KeyBox | None:
        """The master key, or None when the password is not this key's."""
        d = self.doc
        try:
            wrap = derive(password, base64.b64decode(d["salt"]), int(d["N"]), int(d["r"]), int(d["p"]))
            sealed = base64.b64decode(d["data"])
            master = json.loads(AESGCM(wrap).decrypt(sealed[:NONCE], sealed[NONCE:], None))
        except InvalidTag:
            return None
        except (KeyError, ValueError, TypeError) as e:
            raise StoreError(f"key file {self.id} is unreadable ({e})") from e
        self.config_bound = master.get("config") == CONFIG_BOUND
        return KeyBox(base64.b64decode(master["encrypt"]), base64.b64decode(master["mac"]))


def key_key(name: str) -> str:
    return f"{KEYS_PREFIX}/{name}"


def new_master() -> KeyBox:
    return KeyBox(os.urandom(32), os.urandom(32))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def calibrated_p(seconds: float | None = None) -> int:
    """scrypt's p for a new key: as many N = 2^15, r = 8 rounds as fit in ``seconds`` (default
    ``SNAPSTORE_KDF_SECONDS`` or :data:`KDF_SECONDS`), measured once per process, within 1..16."""
    if seconds is None:
        try:
            seconds = float(os.environ.get("SNAPSTORE_KDF_SECONDS", KDF_SECONDS))
        except ValueError:
            seconds = KDF_SECONDS
    if seconds <= 0:
        return SCRYPT_P
    if seconds not in _calibrated:
        t0 = time.perf_counter()
        hashlib.scrypt(os.urandom(16), salt=os.urandom(SALT_BYTES), n=SCRYPT_N, r=SCRYPT_R, p=1,
                       maxmem=256 << 20, dklen=32)
        one = max(time.perf_counter() - t0, 1e-3)
        _calibrated[seconds] = max(SCRYPT_P, min(MAX_P, round(seconds / one)))
    return _calibrated[seconds]


def write_key(backend, box: KeyBox, password: str, *, config_bound: bool = True) -> KeyFile:
    """Wrap ``box``'s master key with ``password`` in a new key file (scrypt calibrated as restic's).
    ``config_bound``: the store's config.json carries its ``auth`` (every store made or opened by
    this version), and the key says so, sealed, so that stripping ``auth`` is found."""
    if not password:
        raise UsageError("an empty password is not allowed")
    salt = os.urandom(SALT_BYTES)
    p = calibrated_p()
    wrap = derive(password, salt, SCRYPT_N, SCRYPT_R, p)
    master = json.dumps({"v": 1, "aead": "aes-256-gcm", "id": "hmac-sha256",
                         "encrypt": base64.b64encode(box.enc_key).decode(),
                         "mac": base64.b64encode(box.mac_key).decode(),
                         **({"config": CONFIG_BOUND} if config_bound else {})}).encode()
    nonce = os.urandom(NONCE)
    doc = {"v": 1, "created": datetime.now(UTC).isoformat(timespec="seconds"), "username": _user(),
           "hostname": socket.gethostname(), "kdf": "scrypt", "N": SCRYPT_N, "r": SCRYPT_R, "p": p,
           "salt": base64.b64encode(salt).decode(),
           "data": base64.b64encode(nonce + AESGCM(wrap).encrypt(nonce, master, None)).decode()}
    data = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
    name = hashlib.sha256(data).hexdigest()
    backend.put(key_key(name), data)
    return KeyFile(name, doc, config_bound)


def list_keys(backend) -> list[KeyFile]:
    """Every key file, oldest first."""
    from snapstore.store.inventory import read_named

    out = []
    for name, data in read_named(backend, KEYS_PREFIX, "key file", StoreError):
        try:
            out.append(KeyFile(name, json.loads(data)))
        except ValueError as e:
            raise StoreError(f"key file {name[:8]} is not valid JSON") from e
    return sorted(out, key=lambda k: (k.doc.get("created", ""), k.name))


def unlock(backend, password: str, location: str) -> tuple[KeyBox, KeyFile]:
    """The master key, from the first key file the password opens; WrongPassword (exit 12) if none."""
    files = list_keys(backend)
    if not files:
        raise StoreError(f"the store at {location} is encrypted but has no key files (keys/ is empty)")
    for kf in files:
        box = kf.unwrap(password)
        if box is not None:
            return box, kf
    raise WrongPassword(f"wrong password: no key of the store at {location} opens with it")


def rebind(backend, box: KeyBox, old: KeyFile, password: str) -> KeyFile:
    """The key file ``password`` opened, written again saying the config is authenticated, then
    the old one removed (a config upgrade: from then on, stripping the config's ``auth`` is found
    by whoever opens the store with this password). A crash between the two leaves both; the next
    open that the old one serves rebinds it again. The new file has its own time and host."""
    try:
        new = write_key(backend, box, password)
        backend.delete(key_key(old.name))
    except (OSError, StoreError):
        return old
    return new


# ---- managing the keys of an opened store (snapstore key ...) --------------------------------


def require_encrypted(store) -> None:
    """Raise UsageError (exit 2) unless ``store`` is encrypted: a plain store has no keys to list,
    add or change. A command calls it before asking for a new password, so a plain store asks
    nothing."""
    if not store.encrypted:
        raise UsageError(f"the store at {store.location} is not encrypted: it has no keys")


def store_keys(store) -> list[KeyFile]:
    """The key files of an opened encrypted store, oldest first (UsageError for a plain store)."""
    require_encrypted(store)
    return list_keys(store.backend)


def add_key(store, password: str) -> KeyFile:
    """Another key file for the store's master key, wrapped by ``password``."""
    require_encrypted(store)
    return write_key(store.backend, store.box, password, config_bound="auth" in store.config)


def find_key(store, key_id: str) -> KeyFile:
    """The key file whose name starts with ``key_id``."""
    hits = [k for k in store_keys(store) if k.name.startswith(key_id.lower())]
    if not hits or len(key_id) < 4:
        raise UsageError(f"no key {key_id!r} in the store (see `snapstore key list`)" if not hits else
                         f"key id {key_id!r} is too short: give at least 4 characters")
    if len(hits) > 1:
        raise UsageError(f"key id {key_id!r} is ambiguous ({len(hits)} keys match)")
    return hits[0]


def remove_key(store, key_id: str, *, force: bool = False) -> KeyFile:
    """Remove a key file. Never the last one (the store would be unreadable for good); the one
    that opened this store only with ``force``."""
    kf = find_key(store, key_id)
    if len(list_keys(store.backend)) <= 1:
        raise UsageError(f"key {kf.id} is the store's only key; add another first (`snapstore key add`)")
    if store.key_file is not None and kf.name == store.key_file.name and not force:
        raise UsageError(f"key {kf.id} is the one in use (it opened the store); give --force to remove it")
    store.backend.delete(key_key(kf.name))
    return kf


def change_password(store, password: str) -> tuple[KeyFile, KeyFile]:
    """A new key file for ``password``, then the key in use removed: (new, removed)."""
    require_encrypted(store)
    if store.key_file is None:
        raise UsageError("the store was opened with a master key, not a password: no key to replace")
    new = add_key(store, password)
    old = store.key_file
    store.backend.delete(key_key(old.name))
    store.key_file = new
    return new, old
