"""Two small object families that forget, prune and tag add to the store layout.

``index/<sha256>`` — a **store index** (zstd msgpack, named by the sha256 of its bytes)::

    {"type": "store-index", "v": 1, "gen": N, "time": iso, "covers": [commit full ids],
     "packs": [pack names], "standalone": [[hash32, size]], "attachments": [[att_id, hash32, size, mime, filename]]}

It is the data plane of every commit it ``covers``: those commits' own ``packs``, ``standalone`` and
``attachment_index`` lists are ignored at rebuild (prune may have repacked or dropped what they
list, and forget may have deleted the commit that listed a pack other snapshots still use).
Forget and prune write a fresh, complete index *before* they delete anything and remove older
indexes afterwards; rebuild uses only the one with the highest ``gen``, so every point of
interruption leaves a newest index that lists only objects that still exist.

``tags/<snapshot full id>/<sha256>`` — a **tag event** (JSON)::

    {"type": "tag", "v": 1, "snapshot": full id, "time": iso, "add": [...], "remove": [...]}

Commit objects are immutable and content-named, so ``snapstore tag`` records changes beside them;
a snapshot's tags are its commit's tags with its events applied in (time, name) order.

``forgotten/<snapshot full id>`` — a **forget record** (sealed JSON ``{"type": "forget", "v": 1,
"snapshot": id, "time": iso}``), written by forget *before* it deletes the commit object and
never removed. A commit the catalog (or a store index) knows, whose object is gone, is an
interrupted forget when its record exists, and a **lost commit** (damage) when it does not:
prune then refuses to delete anything, verify reports it, and ``snapstore repair`` writes it
again from the catalog's copy of its document. A store index with ``"forgets": true`` was
written by a snapstore that keeps these records: every commit it covers either exists or has one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from snapstore.store import objects
from snapstore.store.backend import Backend, ObjectMissing
from snapstore.store.crypto import Damaged, box_of

INDEX_PREFIX = "index"
TAGS_PREFIX = "tags"
FORGOTTEN_PREFIX = "forgotten"
STORE_INDEX = "store-index"


def index_key(name: str) -> str:
    return f"{INDEX_PREFIX}/{name}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def read_named(backend: Backend, prefix: str, what: str, error: type[Exception] = ValueError):
    """(name, bytes) of each file under ``prefix``, whose name must be the SHA-256 of its bytes
    (``error`` if not); a file removed meanwhile is skipped."""
    for key, _size in backend.list(prefix):
        name = key.rsplit("/", 1)[-1]
        try:
            data = backend.get(key)
        except ObjectMissing:
            continue
        if hashlib.sha256(data).hexdigest() != name:
            raise error(f"{what} {name[:12]} is damaged (hash mismatch)")
        yield name, data


def read_indexes(backend: Backend) -> list[tuple[str, dict]]:
    """Every readable store index, oldest first (by gen, then time, then name)."""
    out = []
    for name, data in read_named(backend, INDEX_PREFIX, "store index"):
        doc = objects.decode(data, box_of(backend))
        if doc.get("type") == STORE_INDEX:
            out.append((name, doc))
    out.sort(key=lambda x: (x[1].get("gen", 0), x[1].get("time", ""), x[0]))
    return out


def newest_index(backend: Backend) -> tuple[str, dict] | None:
    idx = read_indexes(backend)
    return idx[-1] if idx else None


def write_index(backend: Backend, *, covers, packs, standalone, attachments) -> tuple[str, dict]:
    """Write a complete store index with a generation above every existing one."""
    gen = max((d.get("gen", 0) for _n, d in read_indexes(backend)), default=0) + 1
    doc = {
        "type": STORE_INDEX, "v": 1, "gen": gen, "time": now_iso(), "covers": sorted(covers), "forgets": True,
        "packs": sorted(packs), "standalone": [[bytes(h), int(n)] for h, n in standalone],
        "attachments": [[a, bytes(h), int(n), m, fn] for a, h, n, m, fn in attachments],
    }
    name, data = objects.encode(doc, box_of(backend))
    backend.put(index_key(name), data)
    return name, doc


def delete_indexes_except(backend: Backend, keep: str) -> int:
    n = 0
    for key, _size in list(backend.list(INDEX_PREFIX)):
        if key.rsplit("/", 1)[-1] != keep:
            backend.delete(key)
            n += 1
    return n


# ---- tags ------------------------------------------------------------------------------------


def tag_key(full_id: str, name: str) -> str:
    return f"{TAGS_PREFIX}/{full_id}/{name}"


def write_tag_event(backend: Backend, full_id: str, add=(), remove=()) -> str:
    doc = {"type": "tag", "v": 1, "snapshot": full_id, "time": now_iso(), "add": list(add), "remove": list(remove)}
    data = box_of(backend).seal(json.dumps(doc, sort_keys=True).encode() + b"\n")
    name = hashlib.sha256(data).hexdigest()
    backend.put(tag_key(full_id, name), data)
    return name


def read_tag_events(backend: Backend) -> dict[str, list[dict]]:
    """snapshot full id -> its tag events in the order they apply."""
    out: dict[str, list[tuple[str, str, dict]]] = {}
    for key, _size in backend.list(TAGS_PREFIX):
        parts = key.split("/")
        if len(parts) != 3:
            continue
        try:
            doc = json.loads(box_of(backend).open(backend.get(key), "tag event"))
        except (ObjectMissing, ValueError, Damaged):
            continue
        out.setdefault(parts[1], []).append((doc.get("time", ""), parts[2], doc))
    return {cid: [d for _t, _n, d in sorted(evs, key=lambda e: (e[0], e[1]))] for cid, evs in out.items()}


def apply_tag_events(tags, events) -> list[str]:
    cur = list(tags or [])
    for ev in events or []:
        for t in ev.get("add", []):
            if t not in cur:
                cur.append(t)
        cur = [t for t in cur if t not in set(ev.get("remove", []))]
    return cur


def delete_tag_events(backend: Backend, full_id: str) -> None:
    for key, _size in list(backend.list(f"{TAGS_PREFIX}/{full_id}")):
        backend.delete(key)


# ---- forget records ----------------------------------------------------------------------------


def forgotten_key(full_id: str) -> str:
    return f"{FORGOTTEN_PREFIX}/{full_id}"


def write_forget_records(backend: Backend, full_ids) -> None:
    """Record that these commits are being forgotten (before their objects are deleted)."""
    for cid in full_ids:
        doc = {"type": "forget", "v": 1, "snapshot": cid, "time": now_iso()}
        backend.put(forgotten_key(cid), box_of(backend).seal(json.dumps(doc, sort_keys=True).encode() + b"\n"))


def forgotten_ids(backend: Backend) -> set[str]:
    """Full ids of every commit a forget recorded (one listing; the records' bodies are not read)."""
    return {key.rsplit("/", 1)[-1] for key, _size in backend.list(FORGOTTEN_PREFIX)}


def present_commits(backend: Backend) -> set[str]:
    return {key.rsplit("/", 1)[-1] for key, _size in backend.list("snapshots")}


def lost_commits(backend: Backend, known) -> list[str]:
    """Commits known to have existed (``known``: the catalog's ids; and every commit the newest
    store index that keeps forget records covers) whose object is gone although no forget
    recorded them: damage, not an interrupted forget."""
    known = set(known)
    newest = newest_index(backend)
    if newest is not None and newest[1].get("forgets"):
        known.update(newest[1]["covers"])
    gone = known - present_commits(backend)
    return sorted(gone - forgotten_ids(backend)) if gone else []
