"""Text that more than one verb prints."""

from __future__ import annotations

import orjson

from snapstore import units

#: Snapshot ids listed in full for a span; a longer one shows its first and last.
SPAN_IDS = 4


def prune_lines(r) -> list[str]:
    """What a prune did (or, dry, would do): packs, blobs, bytes before and after."""
    verb = "would " if r.dry_run else ""
    return [
        f"prune{' (dry run)' if r.dry_run else ''}: {units.count(r.snapshots, 'snapshot')} kept; packs: {r.packs_total} "
        f"({len(r.packs_dead)} unused, {len(r.packs_repack)} to repack, {len(r.packs_orphan)} left over"
        + (f", {len(r.packs_new)} written" if not r.dry_run else "") + f"); blobs live {r.blobs_live}, dead "
        f"{r.blobs_dead}; objects dead {len(r.objects_dead)}; attachments dead {r.attachments_dead}",
        f"  store {units.size(r.bytes_before)} -> {units.size(r.bytes_after)} ({verb}free "
        f"{units.size(r.bytes_freed)}); unused space left {units.size(r.bytes_unused_after)}",
    ] + ([f"  deleting deferred: {units.count(r.deferred, 'reader')} still reading; the next prune deletes "
          "what this one left"] if getattr(r, "deferred", 0) else [])


def json_value(v) -> str:
    """A cell value as a person reads it in this tool: JSON, non-ASCII kept."""
    return orjson.dumps(v).decode()


def span_text(snaps: list, current: bool) -> str:
    """``in 3 snapshots: 1a2b3c4d 5e6f7a8b 9c0d1e2f (2026-01-01 → 2026-01-03)``, ``(current)``
    when the latest snapshot holds the version."""
    if not snaps:
        return "in no snapshot"
    ids = [s.id for s in snaps]
    shown = " ".join(ids) if len(ids) <= SPAN_IDS else f"{ids[0]} … {ids[-1]}"
    first, last = snaps[0].time.strftime("%Y-%m-%d %H:%M"), snaps[-1].time.strftime("%Y-%m-%d %H:%M")
    when = first if first == last else f"{first} → {last}"
    n = len(snaps)
    return f"in {n} snapshot{'s' if n != 1 else ''}: {shown} ({when}){' (current)' if current else ''}"
