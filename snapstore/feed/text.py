"""Feed figures as text lines, and the duration syntax of ``--full-every`` (shared by the CLI verbs)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float | str | None:
    """``24h``, ``90m``, ``7d``, ``1d12h``, a number of seconds; ``0``/``never`` → None (no periodic sweep);
    ``auto`` → ``"auto"`` (each base's interval from its size: snapstore.feed.sweep)."""
    t = str(text).strip().lower()
    if t in ("0", "never", "off", "none"):
        return None
    if t == "auto":
        return "auto"
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise ValueError(f"{text!r} is not a duration (e.g. auto, 24h, 90m, 7d, never)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def feed_lines(feed: list[dict]) -> list[str]:
    """The snapshot summary's feed lines: one per base that has (or lacks) a feed."""
    out = []
    for f in feed:
        what = (f"feed: {f['payloads']} payload(s), {f['reread_changed']} re-read, {f['reread_knockon']} knock-on, "
                f"{f['destroyed']} ended" if f["mode"] == "feed" else "full listing")
        extra = f"; the feed missed {f['missed']} record(s)" if f.get("missed") is not None else ""
        out.append(f"{f['name']} ({f['base_id']}): {what}, {f['requests']} request(s) ({f['reason']}){extra}")
        if f.get("warning"):
            out.append(f"warning: {f['base_id']}: {f['warning']}")
    return out
