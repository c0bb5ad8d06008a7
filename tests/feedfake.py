"""A stand-in for Airtable's webhook routes, in process, for client tests that must not depend on how
the emulator words its payloads: it diffs the emulator's workspace between two reads and reports only
*writable* cells that changed (never a formula, lookup, rollup, count or stamp: the worst case of
reference §4.3), fields and tables created, changed or deleted, in the shapes of reference §3.

``FakeHooks(emu).install(monkeypatch)`` replaces the functions of ``snapstore.source.webhooks``.
"""

from __future__ import annotations

import copy
import itertools

from snapstore.emulator.values import READ_ONLY_TYPES
from snapstore.source import webhooks
from snapstore.source.errors import AccessDenied, NotFound


def _fields_sig(table) -> dict:
    return {f["id"]: (f.get("name"), f.get("type"), repr(f.get("options"))) for f in table.fields}


class FakeHooks:
    def __init__(self, emu, *, deny: bool = False) -> None:
        self.emu = emu
        self.deny = deny
        self.hooks: dict[str, dict] = {}  # hook id -> {base, enabled, expires, payloads, seen, broken}
        self._ids = itertools.count(1)
        self.calls: list[str] = []
        self._txn = itertools.count(1)

    def install(self, monkeypatch) -> FakeHooks:
        for name in ("create_hook", "list_hooks", "payload_page", "refresh_hook", "delete_hook"):
            monkeypatch.setattr(webhooks, name, getattr(self, name))
        return self

    # -- state of a base, as the diff sees it
    def _state(self, base_id: str) -> dict:
        base = self.emu.workspace.base(base_id)
        out = {}
        for t in base.tables:
            writable = {f["id"] for f in t.fields if f["type"] not in READ_ONLY_TYPES}
            out[t.id] = {"name": t.name, "fields": _fields_sig(t),
                         "records": {r.id: {k: copy.deepcopy(v) for k, v in r.cells.items() if k in writable}
                                     for r in t.records.values()}}
        return out

    def _sync(self, h: dict) -> None:
        if not h["enabled"] or h.get("dead"):
            return
        now = self._state(h["base"])
        old = h["seen"]
        p: dict = {"changedTablesById": {}, "createdTablesById": {}, "destroyedTableIds": []}
        for tid, t in now.items():
            if tid not in old:
                p["createdTablesById"][tid] = {"metadata": {"name": t["name"]}}
                continue
            o = old[tid]
            tc: dict = {}
            created = {r: {} for r in t["records"] if r not in o["records"]}
            changed = {r: {"current": {"cellValuesByFieldId": {}}} for r, c in t["records"].items()
                       if r in o["records"] and c != o["records"][r]}
            gone = [r for r in o["records"] if r not in t["records"]]
            if created:
                tc["createdRecordsById"] = created
            if changed:
                tc["changedRecordsById"] = changed
            if gone:
                tc["destroyedRecordIds"] = gone
            if t["name"] != o["name"]:
                tc["changedMetadata"] = {"current": {"name": t["name"]}}
            nf, of = t["fields"], o["fields"]
            if set(nf) - set(of):
                tc["createdFieldsById"] = {f: {"name": nf[f][0], "type": nf[f][1]} for f in set(nf) - set(of)}
            if set(of) - set(nf):
                tc["destroyedFieldIds"] = sorted(set(of) - set(nf))
            ch = {}
            for f in set(nf) & set(of):
                if nf[f] != of[f]:
                    cur = {}
                    if nf[f][0] != of[f][0]:
                        cur["name"] = nf[f][0]
                    if nf[f][1:] != of[f][1:]:
                        cur["type"] = nf[f][1]
                    ch[f] = {"current": cur}
            if ch:
                tc["changedFieldsById"] = ch
            if tc:
                p["changedTablesById"][tid] = tc
        p["destroyedTableIds"] = [tid for tid in old if tid not in now]
        if p["changedTablesById"] or p["createdTablesById"] or p["destroyedTableIds"]:
            p.update(timestamp="2024-01-01T00:00:00.000Z", baseTransactionNumber=next(self._txn),
                     payloadFormat="v0", actionMetadata={"source": "publicApi"})
            h["payloads"].append(p)
        h["seen"] = now

    def _hook(self, base_id: str, hook_id: str) -> dict:
        self.calls.append(hook_id)
        if self.deny:
            raise AccessDenied("access denied (403 INVALID_PERMISSIONS)")
        h = self.hooks.get(hook_id)
        if h is None or h["base"] != base_id or h.get("deleted"):
            raise NotFound(f"not found (404) webhook {hook_id}")
        return h

    # -- the routes
    def create_hook(self, source, base_id: str) -> dict:
        if self.deny:
            raise AccessDenied("access denied (403 INVALID_PERMISSIONS)")
        live = [h for h in self.hooks.values() if h["base"] == base_id and not h.get("deleted")]
        if len(live) >= webhooks.MAX_HOOKS_PER_BASE:
            raise webhooks.HookLimit("base already has 10 webhooks, Airtable's limit (TOO_MANY_WEBHOOKS)")
        hid = f"achFAKE{next(self._ids):010d}"
        self.hooks[hid] = {"base": base_id, "enabled": True, "expires": "2999-01-01T00:00:00.000Z",
                           "payloads": [], "seen": self._state(base_id)}
        return {"id": hid, "macSecretBase64": "x", "expirationTime": "2999-01-01T00:00:00.000Z"}

    def list_hooks(self, source, base_id: str) -> list[dict]:
        if self.deny:
            raise AccessDenied("access denied (403 INVALID_PERMISSIONS)")
        out = []
        for hid, h in self.hooks.items():
            if h["base"] == base_id and not h.get("deleted"):
                self._sync(h)
                out.append({"id": hid, "isHookEnabled": h["enabled"], "expirationTime": h["expires"],
                            "cursorForNextPayload": len(h["payloads"]) + 1, "notificationUrl": None,
                            "areNotificationsEnabled": False})
        return out

    def payload_page(self, source, base_id: str, hook_id: str, cursor: int, limit: int = 50) -> dict:
        h = self._hook(base_id, hook_id)
        self._sync(h)
        got = h["payloads"][cursor - 1: cursor - 1 + limit]
        nxt = cursor + len(got)
        return {"payloads": got, "cursor": nxt, "mightHaveMore": nxt <= len(h["payloads"])}

    def refresh_hook(self, source, base_id: str, hook_id: str) -> dict:
        return {"expirationTime": self._hook(base_id, hook_id)["expires"]}

    def delete_hook(self, source, base_id: str, hook_id: str) -> None:
        self._hook(base_id, hook_id)["deleted"] = True

    # -- controls
    def only(self, base_id: str) -> str:
        (hid,) = [k for k, h in self.hooks.items() if h["base"] == base_id and not h.get("deleted")]
        return hid
