"""The one way snapstore writes and reads a time: ISO 8601 in UTC with a ``Z``, to the second
(``2026-01-02T03:04:05Z``) wherever a person or a script reads it. Stored documents that order
snapshots keep their microseconds (``precise=True``); every reader takes both, and a time without
a zone is UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso(t: datetime | None, *, precise: bool = False) -> str | None:
    """``2026-01-02T03:04:05Z`` (None for None); ``precise``: with microseconds, for stored documents."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="microseconds" if precise else "seconds").replace("+00:00", "Z")


def parse(text: str | datetime | None) -> datetime | None:
    """An ISO date or time as an aware UTC datetime; None when ``text`` is empty or not one."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    if not text:
        return None
    try:
        t = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def until(text: str) -> datetime | None:
    """The latest moment ``text`` names: a date means the end of that day (``log``'s "the snapshot of
    2026-01-02" is its last one), a time itself; None when it is neither."""
    text = text.strip()
    if _DATE.fullmatch(text):
        day = parse(text)
        return None if day is None else day + timedelta(days=1) - timedelta(microseconds=1)
    return parse(text)


__all__ = ["iso", "parse", "until"]
