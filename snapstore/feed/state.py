"""What the store remembers about its change feeds.

Two places, with two jobs:

- **The registry** (``feed/registry/<time>-<rand>.json`` in the store's backend, newest wins): which
  hooks *this store* created, per base. ``feed enable`` writes it, a snapshot that re-creates a hook
  rewrites it before the full listing, ``feed disable`` empties it. Hooks not named here are never
  touched. Objects are write-once (local and S3 alike), so every change writes a new file and then
  deletes the older ones; a reader takes the newest that parses.
- **The feed state** (``doc["feed"][base_id]`` of a snapshot's commit object): the hook and the
  cursor *after* the payloads this snapshot applied. It becomes visible with the snapshot or not at
  all, so a run killed after reading payloads reads the same payloads again next time.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from snapstore import isotime
from snapstore.errors import StoreError

REGISTRY_PREFIX = "feed/registry"
STATE_VERSION = 1


iso = isotime.iso  # the one format and parser of times (snapstore/isotime.py)
parse_time = isotime.parse


# ---------------------------------------------------------------------------------------------
# registry


@dataclass
class Hook:
    """A hook this store created on one base."""

    base_id: str
    hook_id: str
    created: str | None = None
    expires: str | None = None


@dataclass
class Registry:
    store_id: str
    hooks: dict[str, Hook] = field(default_factory=dict)
    problem: str | None = None  # why the stored registry could not be read (it is then empty)

    def to_json(self) -> bytes:
        return json.dumps({"type": "feed-registry", "v": STATE_VERSION, "store_id": self.store_id,
                           "hooks": {b: asdict(h) for b, h in sorted(self.hooks.items())}},
                          sort_keys=True, indent=1).encode() + b"\n"


def _registry_keys(store) -> list[str]:
    return sorted(k for k, _s in store.backend.list(REGISTRY_PREFIX) if k.endswith(".json"))


def load_registry(store) -> Registry:
    """The newest registry, or an empty one. A damaged or foreign registry is reported in
    ``problem`` (and treated as empty: the caller falls back to full listings and says why)."""
    store_id = store.config["store_id"]
    keys = _registry_keys(store)
    if not keys:
        return Registry(store_id)
    key = keys[-1]
    try:
        doc = json.loads(store.box.open(store.backend.get(key), "feed registry"))
        if not isinstance(doc, dict) or doc.get("type") != "feed-registry":
            raise ValueError("not a feed registry")
        hooks = {}
        for b, h in (doc.get("hooks") or {}).items():
            if not isinstance(h, dict) or not str(h.get("hook_id", "")).startswith("ach"):
                raise ValueError(f"bad entry for base {b}")
            hooks[b] = Hook(b, h["hook_id"], h.get("created"), h.get("expires"))
    except (ValueError, TypeError, KeyError, StoreError) as e:
        return Registry(store_id, problem=f"the feed registry {key} is unreadable ({e})")
    if doc.get("store_id") != store_id:
        return Registry(store_id, problem=f"the feed registry {key} belongs to another store "
                                          f"({str(doc.get('store_id'))[:8]}…, this is {store_id[:8]}…)")
    return Registry(store_id, hooks)


def save_registry(store, reg: Registry, now: datetime) -> None:
    """Write the registry as a new object, then drop the older ones (the caller holds the store lock)."""
    old = _registry_keys(store)
    key = f"{REGISTRY_PREFIX}/{now.astimezone(UTC):%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.json"
    if old and key <= old[-1]:  # a clock that went back must not hide the new registry
        key = f"{old[-1][:-5]}-{secrets.token_hex(4)}.json"
    store.backend.put(key, store.box.seal(reg.to_json()))
    for k in old:
        store.backend.delete(k)


# ---------------------------------------------------------------------------------------------
# the feed state a snapshot commits


@dataclass
class FeedState:
    """One base's feed after a snapshot (see docs/FORMAT.md, "Feed state")."""

    store_id: str
    hook_id: str | None  # None: the base is feed-enabled but had no usable hook this run
    cursor: int  # the next payload to read
    read_at: str | None  # when payloads were last read (a gap longer than retention cannot be trusted)
    expires: str | None  # the hook's expiry after this run's read
    mode: str  # how this snapshot read the base: "feed" or "full"
    reason: str  # why (one line)
    last_full: str | None  # the last full listing of the base
    last_feed: str | None  # the last snapshot read through the feed
    missed: int | None = None  # records the feed missed, measured by the last full listing (None: not measured)
    missed_at: str | None = None
    links: str | None = None  # object name of the one-sided link index (feed/links.py)
    sweep_every: float | None = None  # seconds between full listings the run applied (None: never on time)
    v: int = STATE_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


def state_from_doc(doc: dict, base_id: str, store_id: str) -> tuple[FeedState | None, str | None]:
    """The feed state a commit holds for a base: ``(state, None)``, ``(None, None)`` when it has
    none, or ``(None, reason)`` when it is unusable (damaged, another store's)."""
    raw = (doc.get("feed") or {}).get(base_id) if isinstance(doc.get("feed"), dict) else None
    if raw is None:
        return None, None
    try:
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        st = FeedState(**{k: raw[k] for k in FeedState.__dataclass_fields__ if k in raw})
        if not isinstance(st.cursor, int) or st.cursor < 1:
            raise ValueError(f"cursor {st.cursor!r}")
        if st.hook_id is not None and not str(st.hook_id).startswith("ach"):
            raise ValueError(f"hook id {st.hook_id!r}")
    except (TypeError, ValueError) as e:
        return None, f"the feed state of the last snapshot is damaged ({e})"
    if st.store_id != store_id:
        return None, f"the feed state belongs to another store ({str(st.store_id)[:8]}…)"
    return st, None


def latest_state(store, base_id: str, docs: list | None = None) -> tuple[dict | None, FeedState | None, str | None]:
    """The newest snapshot holding the base, and its feed state (see :func:`state_from_doc`).

    Snapshots that did not read the base do not count: its records in the catalog are still those
    of the snapshot that last did. ``docs``: ``catalog.snapshot_docs()`` when the caller has them."""
    for seq, cid, doc_json in reversed(docs if docs is not None else store.catalog.snapshot_docs()):
        doc = json.loads(doc_json)
        if any(b.get("base_id") == base_id for b in doc.get("bases") or []):
            st, problem = state_from_doc(doc, base_id, store.config["store_id"])
            doc["_id"], doc["_seq"] = cid, seq
            return doc, st, problem
    return None, None, None


def recover_registry(store, reg: Registry) -> Registry:
    """A damaged or foreign registry rebuilt from the feed states this store committed (their hook
    ids are this store's: each state carries the store id). Empty when there are none."""
    store_id = store.config["store_id"]
    hooks: dict[str, Hook] = {}
    for _seq, _cid, doc_json in reversed(store.catalog.snapshot_docs()):
        doc = json.loads(doc_json)
        for b in doc.get("bases") or []:
            base_id = b.get("base_id")
            if base_id in hooks:
                continue
            st, _problem = state_from_doc(doc, base_id, store_id)
            if st is not None and st.hook_id:
                hooks[base_id] = Hook(base_id, st.hook_id, None, st.expires)
    return Registry(store_id, hooks, problem=reg.problem)


def stored_schemas(store) -> dict[str, dict]:
    """The latest stored schema of every feed-enabled base: a feed snapshot needs no schema request
    unless a payload says the schema changed. Empty on any doubt (the plan then reads them)."""
    try:
        reg = load_registry(store)
        out = {}
        docs = store.catalog.snapshot_docs() if reg.hooks else []
        for base_id in reg.hooks:
            doc, st, _problem = latest_state(store, base_id, docs)
            if doc is not None and st is not None:
                out[base_id] = doc_schema(store, doc, base_id)
        return out
    except Exception:  # noqa: BLE001 - an optimisation only
        return {}


def doc_schema(store, doc: dict, base_id: str) -> dict:
    """A base's schema as a commit document names it (one blob read)."""
    from snapstore.canonical import loads

    h = next(b["schema"] for b in doc.get("bases") or [] if b.get("base_id") == base_id)
    return loads(store.read_blob(bytes.fromhex(h)))
