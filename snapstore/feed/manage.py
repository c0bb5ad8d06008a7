"""``feed enable``, ``status`` and ``disable`` as library calls (the CLI only prints their results)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from snapstore.feed import sweep
from snapstore.feed.engine import BaseFeed, FeedOff
from snapstore.feed.state import iso, latest_state, load_registry, parse_time, recover_registry, save_registry
from snapstore.source import webhooks
from snapstore.source.errors import AccessDenied, NotFound, SourceError


def _registry(store, now: datetime):
    reg = load_registry(store)
    if reg.problem:
        reg = recover_registry(store, reg)
        save_registry(store, reg, now)
    return reg


def enable(store, source, bases: list[dict], now: datetime | None = None) -> list[dict]:
    """Create snapstore's hook on each base that has none alive. Per base ``{base_id, name, ok,
    hook_id, message}``; the next snapshot of a base lists it in full once, as the feed's baseline."""
    now = now or datetime.now(UTC)
    out = []
    with store.lock("feed enable"):
        reg = _registry(store, now)
        lock = threading.Lock()
        for b in bases:
            base_id, name = b["id"], b.get("name", b["id"])
            entry = {"base_id": base_id, "name": name, "ok": True, "hook_id": None}
            have = reg.hooks.get(base_id)
            try:
                if have is not None:
                    live = {h.get("id"): h for h in webhooks.list_hooks(source, base_id)}.get(have.hook_id)
                    if live is not None and live.get("isHookEnabled", True):
                        entry.update(hook_id=have.hook_id, message=f"already enabled (hook {have.hook_id})")
                        out.append(entry)
                        continue
                    if live is not None:
                        webhooks.delete_hook(source, base_id, have.hook_id)
                hook = BaseFeed.create_hook(source, store, reg, lock, base_id, now)
                entry.update(hook_id=hook.hook_id, message=f"enabled: hook {hook.hook_id}, expires {hook.expires}; "
                                                           "the next snapshot lists the base in full once")
            except FeedOff as e:
                entry.update(ok=False, message=str(e).replace("; full listing", "").replace(
                    "; feed off for this base", ""))
            except AccessDenied:
                entry.update(ok=False, message="the token cannot manage webhooks on this base (403: scope "
                                               "webhook:manage or the creator role missing)")
            out.append(entry)
    return out


def disable(store, source, base_ids: list[str] | None = None, now: datetime | None = None) -> list[dict]:
    """Delete snapstore's hooks (only those its registry names) and forget them."""
    now = now or datetime.now(UTC)
    out = []
    with store.lock("feed disable"):
        reg = _registry(store, now)
        for base_id in list(base_ids or reg.hooks):
            have = reg.hooks.get(base_id)
            if have is None:
                out.append({"base_id": base_id, "ok": True, "message": "the feed was not enabled"})
                continue
            msg = f"hook {have.hook_id} deleted"
            ok = True
            try:
                webhooks.delete_hook(source, base_id, have.hook_id)
            except NotFound:
                msg = f"hook {have.hook_id} was already gone"
            except SourceError as e:
                ok, msg = False, f"hook {have.hook_id} could not be deleted ({e}); still enabled"
            if ok:
                del reg.hooks[base_id]
            out.append({"base_id": base_id, "ok": ok, "message": msg})
        save_registry(store, reg, now)
    return out


def _sweep(st, now: datetime) -> dict:
    """When the next full listing is due, by the interval the last run applied (``--full-every``;
    auto: from the base's size, snapstore.feed.sweep). A run at or after that time sweeps."""
    every = st.sweep_every if st else None
    nxt = sweep.next_due(parse_time(st.last_full), every) if st else None
    return {"sweep_every_hours": None if every is None else round(every / 3600, 2),
            "next_sweep": iso(nxt), "sweep_due": bool(st and sweep.due(parse_time(st.last_full), every, now))}


def status(store, now: datetime | None = None) -> dict:
    """Per feed-enabled base: hook, expiry, cursor, the last feed snapshot and the last full listing,
    and the misses the last full listing measured. From the store alone (no token needed)."""
    now = now or datetime.now(UTC)
    reg = load_registry(store)
    bases = []
    for base_id, hook in sorted(reg.hooks.items()):
        doc, st, problem = latest_state(store, base_id)
        exp = parse_time(st.expires if st else hook.expires)
        bases.append({
            "base_id": base_id, "hook_id": hook.hook_id,
            "expires": st.expires if st else hook.expires,
            "expired": bool(exp is not None and exp <= now),
            "cursor": st.cursor if st else None,
            "last_snapshot": (doc or {}).get("_id") or None,  # the full id, as every JSON shape gives it
            "last_mode": st.mode if st else None, "last_reason": st.reason if st else problem,
            "last_feed": st.last_feed if st else None, "last_full": st.last_full if st else None,
            "missed": st.missed if st else None, "missed_at": st.missed_at if st else None,
            "hook_matches": bool(st and st.hook_id == hook.hook_id),
            **_sweep(st, now),
        })
    return {"registry_problem": reg.problem, "bases": bases}
