"""Sizes and counts as a person reads them, the same in every command: binary units (``KiB``,
``MiB``, ``GiB``, as restic and ``ls -h`` print them) and plurals that agree ("1 base", "2 bases").
JSON output keeps raw numbers (sizes in bytes); only text goes through here."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")

#: Plurals that do not just add an "s".
_IRREGULAR = {"entry": "entries", "was": "were", "this": "these", "is": "are", "copy": "copies"}


def size(n: int | float | None) -> str:
    """``1023 B``, ``1.5 KiB``, ``12.3 MiB``; ``-`` for None; a negative size keeps its sign."""
    if n is None:
        return "-"
    sign, v = ("-" if n < 0 else ""), abs(float(n))
    for unit in _UNITS:
        if v < 1024 or unit == _UNITS[-1]:
            return f"{sign}{v:.0f} {unit}" if unit == "B" else f"{sign}{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


def plural(word: str, n: int) -> str:
    """``word`` agreeing with ``n``: plural("base", 1) == "base", plural("base", 2) == "bases"."""
    if n == 1 or n == -1:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def count(n: int, word: str, *, thousands: bool = True) -> str:
    """``1 base``, ``2 bases``, ``1,500 records``."""
    return f"{n:,} {plural(word, n)}" if thousands else f"{n} {plural(word, n)}"


def number(n: int | None) -> str:
    """``1,500``: every count a person reads has its thousands separated (``?`` for unknown)."""
    return "?" if n is None else f"{n:,}"


#: The width text output keeps to: a terminal's 80 columns less a prompt's indent, as git's
#: summaries do (the snapshot summary was 71 columns and wrapped on a 70-column terminal).
WIDTH = 70


def fit(text: str, width: int = WIDTH) -> str:
    """Whole lines: a line longer than ``width`` breaks at spaces, continued two spaces deeper
    than it starts. A word is never cut (a path or an id longer than the width stays whole, to be
    copied)."""
    import textwrap

    out = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()))
        out.extend(textwrap.wrap(line, width, initial_indent="", subsequent_indent=indent + "  ",
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def clip(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis marking a cut."""
    return text if len(text) <= width else text[:max(0, width - 1)] + "…"


__all__ = ["WIDTH", "clip", "count", "fit", "number", "plural", "size"]
