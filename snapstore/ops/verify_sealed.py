"""verify without the password: what an encrypted store's stored bytes prove on their own.

Every pack, object, commit, store index, tag event and key file is named by the SHA-256 of its
stored (sealed) bytes, as restic's files are, so a damaged or truncated file is found without
decrypting anything; a pack's tail (magic, version, trailer length, CRC-32 of the sealed trailer)
is checked too. What needs the key is said, not skipped silently: blob contents, manifests, the
catalog's agreement, and which snapshots, tables and records a damage reaches.
"""

from __future__ import annotations

import hashlib
import json
import os

from snapstore.errors import StoreError
from snapstore.ops.verify import Report
from snapstore.store.backend import LocalBackend, ObjectMissing
from snapstore.store.packs import PackError, check_tail
from snapstore.store.s3 import parse_s3_url

#: Prefixes whose files are named by the SHA-256 of their bytes (tags: tags/<snapshot>/<sha256>).
NAMED_BY_HASH = ("packs", "objects", "snapshots", "index", "keys", "tags")
NOT_CHECKED = ("without the password, blob contents, manifests, the catalog's agreement and the "
               "snapshots a damage reaches were not checked (give the password to check them)")


def open_backend(location: str):
    """The store's objects and its config, without opening it (no key, no catalog)."""
    if parse_s3_url(location) is not None:
        from snapstore.store.s3 import S3Backend

        backend = S3Backend.from_url(os.fspath(location))
    else:
        backend = LocalBackend(location)
    try:
        config = json.loads(backend.get("config.json"))
    except (ObjectMissing, ValueError) as e:
        raise StoreError(f"no readable config.json at {location}") from e
    return backend, config


def pack_tail_problem(data: bytes) -> str | None:
    """Why a pack's tail is not well formed, or None (snapstore.store.packs.check_tail's words)."""
    try:
        check_tail(data)
    except PackError as e:
        return str(e).removeprefix("pack ")
    return None


def verify_sealed(location: str) -> Report:
    """Check every stored file against its name, and every pack's tail; no key needed."""
    backend, _config = open_backend(location)
    rep = Report()
    counts = dict.fromkeys(NAMED_BY_HASH, 0)
    for prefix in NAMED_BY_HASH:
        for key, _size in backend.list(prefix):
            name = key.rsplit("/", 1)[-1]
            h = hashlib.sha256()
            head = bytearray()
            with backend.open(key) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    if prefix == "packs":
                        head += chunk
            counts[prefix] += 1
            if h.hexdigest() != name:
                rep.add("object-hash", key, f"{key}: content does not match its name (sha256)")
                continue
            if prefix == "packs":
                why = pack_tail_problem(bytes(head))
                if why:
                    rep.add("pack-trailer", key, f"pack {name[:12]}: {why}")
    rep.warnings.append(NOT_CHECKED)
    rep.checked.update({f"{p}_hashed": n for p, n in counts.items()})
    return rep
