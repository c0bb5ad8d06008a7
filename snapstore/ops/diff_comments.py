"""Comments in ``diff`` and ``history``: per record, the comments added, edited and deleted between two
snapshots, and each record's comment timeline across the store. Comments do not change a record's hash
(they are stored per table beside the records), so they are compared on their own: the comments
hash of each table in both snapshots comes from one catalog read, and only tables whose hash differs
are read."""

from __future__ import annotations

from typing import Any

from snapstore.store.catalog.diff import comment_hashes


def _who(c: dict) -> str:
    a = c.get("author") or {}
    return a.get("name") or a.get("email") or a.get("id") or "?"


def _entry(c: dict) -> dict:
    """One comment as diff and history show it; ``parent``: the comment a reply answers (None: not a reply)."""
    return {"id": c.get("id"), "author": _who(c), "time": c.get("createdTime"), "text": c.get("text"),
            "parent": c.get("parentCommentId")}


def compare_comments(old: list[dict], new: list[dict]) -> dict | None:
    """``{"added": [...], "edited": [{..., "old": text, "new": text}], "deleted": [...]}`` by comment
    id, oldest first; None when nothing changed."""
    before = {c.get("id"): c for c in old}
    after = {c.get("id"): c for c in new}

    def oldest(cs):
        return sorted(cs, key=lambda c: c.get("createdTime") or "")

    added = [_entry(c) for c in oldest(c for i, c in after.items() if i not in before)]
    deleted = [_entry(c) for c in oldest(c for i, c in before.items() if i not in after)]
    edited = [dict(_entry(c), old=before[i].get("text"), new=c.get("text"), edited=c.get("lastUpdatedTime"))
              for i, c in after.items() if i in before and before[i].get("text") != c.get("text")]
    edited.sort(key=lambda e: e["time"] or "")
    if not (added or edited or deleted):
        return None
    return {"added": added, "edited": edited, "deleted": deleted}


def add_comment_changes(store, sa, sb, tables: list) -> None:
    """Fill ``TableDiff.comments`` (record id -> changes) for every table held by both snapshots
    whose comments differ."""
    hashes = comment_hashes(store.catalog, [sa.seq, sb.seq])
    for td in tables:
        if td.status != "changed":
            continue
        ha, hb = hashes.get((sa.seq, td.base_id, td.table_id)), hashes.get((sb.seq, td.base_id, td.table_id))
        if ha == hb:
            continue
        old = store.comments(sa, td.base_id, td.table_id) if ha else {}
        new = store.comments(sb, td.base_id, td.table_id) if hb else {}
        for rid in sorted(set(old) | set(new)):
            ch = compare_comments(old.get(rid) or [], new.get(rid) or [])
            if ch:
                td.comments[rid] = ch


def comment_counts(changes: dict[str, dict]) -> dict[str, int]:
    return {k: sum(len(c[k]) for c in changes.values()) for k in ("added", "edited", "deleted")}


def comment_timeline(store, record_id: str, where: list[tuple[Any, str, str]]) -> list[dict]:
    """Every comment a record had in any snapshot (``where``: (snapshot, base, table) holding the
    record, oldest first): when it was first and last seen, its texts in order, and the first
    snapshot without it (deleted)."""
    seen: dict[str, dict] = {}
    last_snap = None
    for snap, bid, tid in where:
        cs = {c.get("id"): c for c in (store.comments(snap, bid, tid).get(record_id) or [])}
        for cid, c in cs.items():
            e = seen.get(cid)
            if e is None:
                e = seen[cid] = dict(_entry(c), texts=[c.get("text")], first=snap.id, last=snap.id,
                                     deleted_in=None)
            else:
                if e["texts"][-1] != c.get("text"):
                    e["texts"].append(c.get("text"))
                e["last"], e["deleted_in"] = snap.id, None
        for cid, e in seen.items():
            if cid not in cs and e["deleted_in"] is None and e["last"] == (last_snap.id if last_snap else None):
                e["deleted_in"] = snap.id
        last_snap = snap
    return sorted(seen.values(), key=lambda e: e["time"] or "")


def record_comment_history(store, record_id: str, versions: list) -> list[dict]:
    """The comment timeline of a record from its :func:`snapstore.ops.diff.history` versions."""
    by_id = {s.id: s for s in store.list_snapshots()}
    where = [(by_id[sid], v.base_id, v.table_id) for v in versions for sid in v.snapshots if sid in by_id]
    where.sort(key=lambda w: w[0].seq)
    return comment_timeline(store, record_id, where)


def reply_mark(entry: dict) -> str:
    """" (reply)" after the author of a reply, in diff and history alike."""
    return " (reply)" if entry.get("parent") else ""


def timeline_lines(timeline: list[dict]) -> list[tuple[str, str]]:
    """(style sign, line) per comment of a timeline: when, who, the text (and each edit), deletion."""
    from snapstore.ops.diff import short_value

    out = []
    for e in timeline:
        out.append(("+", f"+ {e['time']} {e['author']}{reply_mark(e)}: {short_value(e['texts'][0])}   [seen {e['first']}]"))
        for t in e["texts"][1:]:
            out.append(("~", f"    ~ edited: {short_value(t)}"))
        if e["deleted_in"]:
            out.append(("-", f"    - deleted (gone in {e['deleted_in']})"))
    return out
