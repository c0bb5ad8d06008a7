"""Airtable's webhooks, polled (no notification pings are sent): hooks per base, their payloads by cursor,
expiry and retention on the emulator's clock, and the payloads every write produces.

Behaviour follows /work/shared/reference/airtable-webhooks.md; where it is not confirmed the emulator
picks the side that is hardest for a client (and says so in a comment), or offers a switch:

- ``report_computed`` (default False): whether computed cells (lookup, rollup, count, formula) that
  change in OTHER records because of a write are reported as changed records (reference §4.3);
- ``max_records_per_payload``: a larger action is split into several payloads sharing one
  ``baseTransactionNumber`` (reference §4.1; Airtable's own limit is not documented).

Writes reach ``record()`` through ``Emulator.action()``, which opens a ``journal.Journal`` around
every write route, ``churn`` and admin endpoint."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from .journal import Journal
from .state import Base, Workspace, iso_from_epoch
from .values import WriteError

DAY = 86400.0
HOOK_LIFETIME = 7 * DAY  # "will expire and be disabled after 7 days" (reference §1.2)
AFTERLIFE = 7 * DAY  # metadata and past payloads stay readable 7 more days after expiry (§1.2)
RETENTION = 7 * DAY  # payloads are deleted 1 week after they were made (§1.4)
MAX_HOOKS_PER_BASE = 10
MAX_PAYLOADS_PER_PAGE = 50
DATA_TYPES = ("tableData", "tableFields", "tableMetadata")
ERROR_CODES = ("INVALID_FILTERS", "INVALID_HOOK", "INTERNAL_ERROR")
SCOPE = "webhook:manage"
DATA_SCOPES = {"tableData": "data.records:read", "tableFields": "schema.bases:read",
               "tableMetadata": "schema.bases:read"}


def _not_found(hook_id: str) -> WriteError:
    return WriteError(404, "NOT_FOUND", f"Could not find webhook {hook_id}")


def _bad(message: str, type_: str = "INVALID_REQUEST_UNKNOWN") -> WriteError:
    return WriteError(422, type_, message)


class EmulatedHook:
    """One webhook and the payloads made for it (``payloads``: (number, made at, payload), oldest first)."""

    def __init__(self, hook_id: str, base_id: str, spec: dict, url: str | None, now: float) -> None:
        self.id, self.base_id, self.spec, self.url = hook_id, base_id, spec, url
        self.secret = base64.b64encode(os.urandom(32)).decode()
        self.created = now
        self.expires = now + HOOK_LIFETIME
        self.enabled = True
        self.dead = False  # after an INVALID_HOOK / INVALID_FILTERS error payload: nothing more is recorded
        self.notifications = url is not None
        self.next_cursor = 1
        self.payloads: list[tuple[int, float, dict]] = []

    @property
    def filters(self) -> dict:
        return self.spec["options"]["filters"]

    @property
    def includes(self) -> dict:
        return self.spec["options"].get("includes") or {}

    def to_json(self) -> dict:
        return {"id": self.id, "areNotificationsEnabled": self.notifications, "cursorForNextPayload": self.next_cursor,
                "isHookEnabled": self.enabled, "lastSuccessfulNotificationTime": None,
                "notificationUrl": self.url, "expirationTime": iso_from_epoch(self.expires),
                "lastNotificationResult": None, "specification": self.spec}

    def append(self, payload: dict, now: float) -> None:
        self.payloads.append((self.next_cursor, now, payload))
        self.next_cursor += 1


class Webhooks:
    """Every base's webhooks. ``clock`` gives all times; ``new_id`` makes hook ids (``ach…``)."""

    def __init__(self, clock: Any, new_id: Callable[[str], str], report_computed: bool = False,
                 max_records_per_payload: int = 100) -> None:
        self.clock = clock
        self.new_id = new_id
        self.report_computed = bool(report_computed)
        self.max_records_per_payload = int(max_records_per_payload)
        self._hooks: dict[str, dict[str, EmulatedHook]] = {}
        self._txn: dict[str, int] = {}  # base id -> last baseTransactionNumber

    # ------------------------------------------------------------------ time
    def _tick(self, base_id: str) -> dict[str, EmulatedHook]:
        """Apply the clock: expired hooks are disabled, then gone after their afterlife; old payloads go."""
        now = self.clock.now()
        hooks = self._hooks.get(base_id, {})
        for hid, h in list(hooks.items()):
            if h.enabled and now >= h.expires:
                h.enabled = False
            if not h.enabled and now >= h.expires + AFTERLIFE:
                del hooks[hid]
                continue
            if h.payloads and h.payloads[0][1] + RETENTION <= now:
                h.payloads = [p for p in h.payloads if p[1] + RETENTION > now]
        return hooks

    def _hook(self, base_id: str, hook_id: str) -> EmulatedHook:
        h = self._tick(base_id).get(hook_id)
        if h is None:
            raise _not_found(hook_id)
        return h

    def watching(self, base_id: str) -> bool:
        """Whether a write on this base must be journaled (an enabled, recording hook exists)."""
        return any(h.enabled and not h.dead for h in self._tick(base_id).values())

    # ------------------------------------------------------------------ routes
    def create(self, base_id: str, body: Any) -> dict:
        if not isinstance(body, dict) or set(body) - {"notificationUrl", "specification"}:
            raise _bad("A webhook needs a specification (and optionally a notificationUrl)")
        spec = body.get("specification")
        filters = (spec.get("options") or {}).get("filters") if isinstance(spec, dict) else None
        types = filters.get("dataTypes") if isinstance(filters, dict) else None
        if not isinstance(types, list) or not types or any(t not in DATA_TYPES for t in types):
            raise _bad("specification.options.filters.dataTypes must list tableData, tableFields or tableMetadata",
                       "INVALID_WEBHOOK_SPECIFICATION")
        url = body.get("notificationUrl")
        if url is not None and not isinstance(url, str):
            raise _bad("notificationUrl must be a string")
        hooks = self._tick(base_id)
        if len(hooks) >= MAX_HOOKS_PER_BASE:
            # the limit is documented; the error's type is not (reference §1.2): an assumption
            raise _bad(f"The number of webhooks per base is limited to {MAX_HOOKS_PER_BASE}", "TOO_MANY_WEBHOOKS")
        h = EmulatedHook(self.new_id("ach"), base_id, {"options": dict(spec["options"])}, url or None, self.clock.now())
        self._hooks.setdefault(base_id, {})[h.id] = h
        return {"id": h.id, "macSecretBase64": h.secret, "expirationTime": iso_from_epoch(h.expires)}

    def hooks(self, base_id: str) -> list[dict]:
        """What ``GET /v0/bases/{base}/webhooks`` returns under "webhooks"."""
        return [h.to_json() for h in self._tick(base_id).values()]

    def payloads(self, base_id: str, hook_id: str, cursor: int = 1, limit: int | None = None) -> dict:
        """Payloads from ``cursor`` (the number of the first one), at most ``limit`` (<= 50). Reading an
        enabled hook extends it to 7 days from now. Payloads past retention are gone: a cursor older than
        the oldest kept starts at the oldest kept (the gap shows as ``cursor`` jumping ahead)."""
        h = self._hook(base_id, hook_id)
        if not isinstance(cursor, int) or cursor < 1:
            raise _bad("cursor must be a positive integer")
        limit = MAX_PAYLOADS_PER_PAGE if limit is None else limit
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAYLOADS_PER_PAGE:
            raise _bad(f"limit must be between 1 and {MAX_PAYLOADS_PER_PAGE}")
        now = self.clock.now()
        if h.enabled:
            h.expires = now + HOOK_LIFETIME
        kept = [p for p in h.payloads if p[0] >= cursor]
        page = kept[:limit]
        nxt = page[-1][0] + 1 if page else cursor  # nothing returned: the cursor sent (§1.4)
        return {"payloads": [p[2] for p in page], "cursor": nxt, "mightHaveMore": len(kept) > len(page)}

    def refresh(self, base_id: str, hook_id: str) -> dict:
        h = self._hook(base_id, hook_id)
        if not h.enabled:
            # "refresh only works on active webhooks" (§1.5); the error's shape is an assumption
            raise _bad(f"Webhook {hook_id} is disabled and cannot be refreshed", "CANNOT_REFRESH_DISABLED_WEBHOOK")
        h.expires = self.clock.now() + HOOK_LIFETIME
        return {"expirationTime": iso_from_epoch(h.expires)}

    def delete(self, base_id: str, hook_id: str) -> dict:
        """Delete a hook (also what "deleted from outside" means for a test)."""
        self._hook(base_id, hook_id)
        del self._hooks[base_id][hook_id]
        return {}

    def enable_notifications(self, base_id: str, hook_id: str, body: Any) -> dict:
        h = self._hook(base_id, hook_id)
        if not isinstance(body, dict) or not isinstance(body.get("enable"), bool):
            raise _bad('The body must be {"enable": true} or {"enable": false}')
        h.notifications = body["enable"]
        return {}

    # ------------------------------------------------------------------ controls for tests
    def inject_error(self, base_id: str, hook_id: str, code: str = "INTERNAL_ERROR", disable: bool = False) -> dict:
        """Append an error payload. After ``INVALID_HOOK`` or ``INVALID_FILTERS`` the hook records nothing
        more while still listing as enabled, as bluedot observed (reference §4.6); ``disable=True`` also
        turns ``isHookEnabled`` off. ``INTERNAL_ERROR`` leaves the hook working."""
        h = self._hook(base_id, hook_id)
        payload = {"timestamp": iso_from_epoch(self.clock.now()), "baseTransactionNumber": self._next_txn(base_id),
                   "payloadFormat": "v0", "error": True, "code": code}
        h.append(payload, self.clock.now())
        if code in ("INVALID_HOOK", "INVALID_FILTERS"):
            h.dead = True
        if disable:
            h.enabled = False
        return payload

    def disable(self, base_id: str, hook_id: str) -> None:
        self._hook(base_id, hook_id).enabled = False

    def expire(self, base_id: str, hook_id: str) -> None:
        """The hook's expiry is now: it is disabled (and gone 7 days later)."""
        h = self._hook(base_id, hook_id)
        h.expires = self.clock.now() - 1
        self._tick(base_id)

    # ------------------------------------------------------------------ payloads from writes
    def _next_txn(self, base_id: str) -> int:
        # a base-level counter that does not start at 1 (reference §3.1: seen in the millions)
        self._txn[base_id] = self._txn.get(base_id, 1000) + 1
        return self._txn[base_id]

    def begin(self, ws: Workspace, base_ids: list[str]) -> Journal | None:
        watched = [b for b in dict.fromkeys(base_ids) if self.watching(b)]
        return Journal(ws, watched) if watched else None

    def record(self, ws: Workspace, journal: Journal, source: str, user: dict) -> None:
        """Turn what ``journal`` saw into payloads for every recording hook of each base."""
        from .payloads import build_payloads

        now = self.clock.now()
        for base_id in journal.schemas:
            changes = journal.diff(base_id)
            base = ws.base(base_id)
            if changes is None or base is None:
                continue
            hooks = [h for h in self._tick(base_id).values() if h.enabled and not h.dead]
            if not hooks:
                continue
            txn = self._next_txn(base_id)
            meta = {"timestamp": iso_from_epoch(now), "baseTransactionNumber": txn, "payloadFormat": "v0",
                    "actionMetadata": {"source": source, "sourceMetadata": _source_metadata(source, user, base)}}
            for h in hooks:
                for p in build_payloads(ws, base, journal, changes, h, meta, self.report_computed,
                                        self.max_records_per_payload):
                    h.append(p, now)
                code = _invalidated(h, changes)
                if code is not None:
                    h.append({"timestamp": iso_from_epoch(now), "baseTransactionNumber": txn, "payloadFormat": "v0",
                              "error": True, "code": code}, now)
                    h.dead = True


def _invalidated(hook: EmulatedHook, changes: dict) -> str | None:
    """The error a change puts the hook in, if any: a watched field deleted (INVALID_HOOK, as bluedot
    saw, reference §4.6), or the table of its recordChangeScope deleted (INVALID_FILTERS: an assumption)."""
    watched = set(hook.filters.get("watchDataInFieldIds") or ()) | set(hook.filters.get("watchSchemasOfFieldIds") or ())
    gone = {f for e in changes["tables"].values() for f in e["destroyed_fields"]}
    if watched & gone:
        return "INVALID_HOOK"
    if hook.filters.get("recordChangeScope") in changes["destroyed_tables"]:
        return "INVALID_FILTERS"
    return None


def _source_metadata(source: str, user: dict, base: Base) -> dict:
    u = {"id": user.get("id"), "email": user.get("email"), "permissionLevel": base.permission_level,
         "name": user.get("name")}
    return {"user": u}
