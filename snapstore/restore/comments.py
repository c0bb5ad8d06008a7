"""Comments back on restored records, oldest first, replies under their re-created parent.

Airtable gives a new comment the author and the time of whoever posts it (reference §7), so the
original author and time go at the start of the text: ``[Ada Lovelace <ada@example.com> ·
2024-01-02T03:04:05.000Z] the text``. A comment that already starts so (a restore of a restored base)
keeps its prefix: the attribution stays the first author's. Each comment is journaled (old id → new
id) after it is posted, with an intent row before, so a resumed restore posts none twice."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

PREFIX = re.compile(r"^\[(?P<who>[^\]\n]*) · (?P<when>\d{4}-\d\d-\d\dT[^\]\n]*)\] ")


def author_of(c: dict) -> str:
    a = c.get("author") or {}
    name, email = a.get("name"), a.get("email")
    if name and email:
        return f"{name} <{email}>"
    return name or email or a.get("id") or "unknown author"


def attributed_text(c: dict) -> str:
    """The text to post for comment ``c``: its original author and time first (once)."""
    text = c.get("text") or ""
    if PREFIX.match(text):
        return text
    return f"[{author_of(c)} · {c.get('createdTime') or '?'}] {text}"


def original_text(text: str) -> str:
    """A posted comment's text without the attribution prefix (for comparisons)."""
    return PREFIX.sub("", text or "", count=1)


def oldest_first(comments: Iterable[dict]) -> list[dict]:
    """The order to post in: oldest first (the API lists newest first; the sort is stable, so comments
    with the same time keep their order), except that a reply never goes before its parent (a reply
    needs its parent's new id)."""
    ordered = sorted(reversed(list(comments)), key=lambda c: c.get("createdTime") or "")
    by_id = {c.get("id"): c for c in ordered}
    out: list[dict] = []
    seen: set = set()

    def put(c: dict) -> None:
        if id(c) in seen:
            return
        seen.add(id(c))
        parent = by_id.get(c.get("parentCommentId"))
        if parent is not None:
            put(parent)
        out.append(c)

    for c in ordered:
        put(c)
    return out


def restore_comments(*, journal, writer, comments: dict[str, list[dict]], src_table: str, new_table: str,
                     record_map: dict[str, str], tick: Callable[[], None]) -> int:
    """Post every comment of ``comments`` (old record id -> comments) on the mapped new record;
    returns how many were posted (adopted ones from an interrupted run not counted)."""
    cmap = journal.comment_map(src_table)
    pend = journal.pending(src_table, "comment")
    posted = 0
    for old_rec in sorted(comments):
        new_rec = record_map.get(old_rec)
        if new_rec is None:
            continue
        for c in oldest_first(comments[old_rec]):
            if c.get("id") in cmap:
                continue
            text = attributed_text(c)
            if pend is not None and pend[1] == c.get("id"):
                pend = None
                known = set(cmap.values())
                hit = next((x for x in writer.list_comments(new_table, new_rec)
                            if x.get("text") == text and x.get("id") not in known), None)
                if hit is not None:  # posted before the interruption, not journaled: adopt it
                    cmap[c["id"]] = hit["id"]
                    journal.map_comment(src_table, c["id"], hit["id"])
                    continue
            parent = cmap.get(c.get("parentCommentId")) if c.get("parentCommentId") else None
            journal.set_pending(src_table, "comment", [old_rec, c.get("id")])
            made = writer.create_comment(new_table, new_rec, text, parent)
            cmap[c["id"]] = made["id"]
            journal.map_comment(src_table, c["id"], made["id"])
            posted += 1
            tick()
    return posted
