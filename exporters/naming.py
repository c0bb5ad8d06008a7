"""File and folder names that are safe on Linux, macOS and Windows, unique, and never escape the export.

Airtable table, field and attachment names are arbitrary user text: they may contain slashes, ``..``,
control characters, Windows device names (``CON``, ``NUL``, ``COM1``), trailing dots or spaces, be empty,
or be hundreds of characters long. Every name an exporter puts on disk goes through :func:`safe_name`
(one path component, never a separator) and a :class:`NameAllocator` (unique per folder, compared the
way case-insensitive, normalising file systems compare: NFC + casefold), and every path is joined with
:func:`inside`, which refuses anything that would resolve outside the export folder. Column names, CSV
headers and SQL identifiers go through :func:`safe_column` (control characters out) and an allocator.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

#: Names Windows reserves for devices, with or without an extension (``CON.txt`` is reserved too).
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{d}" for p in ("COM", "LPT") for d in list("0123456789") + ["\u00b9", "\u00b2", "\u00b3"]
}
#: Characters invalid in Windows names (and ``/``, NUL on every system), plus all C0/C1 controls.
_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f-\x9f]')
#: Unicode characters that render invisibly or reorder text (bidi controls): replaced too.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
#: Default budget for one name in UTF-8 bytes. NAME_MAX is 255 bytes on Linux/macOS and 255 UTF-16 units
#: on Windows; macOS stores names decomposed (NFD), which can grow them, and Windows paths are
#: limited as a whole, so names stay well below the limit.
MAX_BYTES = 100
HASH_LEN = 8


def short_hash(text: str, n: int = HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def _truncate_bytes(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def safe_name(name: object, *, ext: str = "", max_bytes: int = MAX_BYTES, fallback: str = "unnamed") -> str:
    """One safe path component for ``name`` (+ ``ext``, e.g. ``".json"``).

    NFC-normalised; separators, reserved and control characters become ``_``; no leading dot (hidden
    files) and no trailing dots or spaces (Windows drops them); empty becomes ``fallback``; Windows
    device names get a ``_`` prefix; names longer than ``max_bytes`` UTF-8 bytes are cut at a character
    boundary and get ``~`` + a hash of the full original, so two long names sharing a prefix stay apart.
    """
    original = "" if name is None else str(name)
    s = unicodedata.normalize("NFC", original)
    s = _INVISIBLE.sub("", s)
    s = _BAD.sub("_", s)
    s = s.strip().rstrip(". ")
    if s.startswith("."):
        s = "_" + s[1:]
    if not s:
        s = fallback
    if s.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        s = "_" + s
    ext = _BAD.sub("_", unicodedata.normalize("NFC", ext))
    budget = max_bytes - len(ext.encode("utf-8"))
    if len(s.encode("utf-8")) > budget:
        suffix = "~" + short_hash(original)
        s = _truncate_bytes(s, budget - len(suffix)).rstrip(". ") + suffix
    return s + ext


def split_ext(filename: str, max_ext: int = 16) -> tuple[str, str]:
    """("photo", ".JPG") for "photo.JPG"; no extension when it is long, odd or the whole name."""
    stem, dot, ext = filename.rpartition(".")
    if not dot or not stem or len(ext) > max_ext or not re.fullmatch(r"[A-Za-z0-9_+-]+", ext):
        return filename, ""
    return stem, "." + ext


def safe_filename(filename: object, *, max_bytes: int = MAX_BYTES, fallback: str = "file") -> str:
    """Like :func:`safe_name`, keeping a short, plain extension intact when the name is cut."""
    stem, ext = split_ext("" if filename is None else str(filename))
    return safe_name(stem, ext=ext, max_bytes=max_bytes, fallback=fallback)


#: Control characters (C0, DEL, C1): NUL cannot be in an SQL statement at all (sqlite3 refuses it),
#: and the others break CSV headers, terminals and tools that read column names line by line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_column(name: object) -> str:
    """A column name, CSV header or SQL identifier for ``name``: every control character (NUL, tab,
    line breaks, DEL, C1) becomes ``_``; everything else is kept as the user wrote it (SQL identifiers
    are quoted, CSV headers RFC 4180-quoted). Empty stays empty (the caller's fallback applies).
    Uniqueness is the :class:`NameAllocator`'s job."""
    return _CONTROL.sub("_", "" if name is None else str(name))


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


class NameAllocator:
    """Hands out names unique within one folder (or one SQLite database), case-insensitively.

    A name that collides with one already given gets ``~`` + a short hash of the original text (stable
    from run to run), then a counter if even that collides.
    """

    def __init__(self, reserved: tuple[str, ...] | list[str] = (), *, max_bytes: int = MAX_BYTES) -> None:
        self._used: set[str] = {_key(r) for r in reserved}
        self.max_bytes = max_bytes

    def take(self, name: object, ext: str = "", *, fallback: str = "unnamed",
             sanitize: bool | Callable[[object], str] = True) -> str:
        """A unique name for ``name`` + ``ext``: sanitised with :func:`safe_name` (True), kept as is
        (False), or passed through ``sanitize`` (e.g. :func:`safe_column`). A collision's hash is
        of the original text, so two names that sanitise alike still get distinct, stable names."""
        original = "" if name is None else str(name)
        if callable(sanitize):
            cand = (sanitize(original) or fallback) + ext
        elif sanitize:
            ext = _BAD.sub("_", unicodedata.normalize("NFC", ext))
            cand = safe_name(original, ext=ext, max_bytes=self.max_bytes, fallback=fallback)
        else:
            cand = (original or fallback) + ext
        if _key(cand) in self._used:
            stem = cand[: len(cand) - len(ext)] if ext else cand
            suffix = "~" + short_hash(original + ext)
            room = self.max_bytes - len(ext.encode("utf-8")) - len(suffix) - 6
            cand = _truncate_bytes(stem, room).rstrip(". ") + suffix + ext
            n = 2
            while _key(cand) in self._used:
                cand = _truncate_bytes(stem, room).rstrip(". ") + f"{suffix}-{n}" + ext
                n += 1
        self._used.add(_key(cand))
        return cand


class UnsafePath(ValueError):
    """A path would have left the export folder."""


def inside(root: Path, *parts: str) -> Path:
    """``root / parts...``, refusing absolute parts, ``..`` and anything resolving outside ``root``."""
    for p in parts:
        if not p or p in (".", "..") or "/" in p or "\\" in p or "\x00" in p or os.path.isabs(p):
            raise UnsafePath(f"refusing unsafe path component {p!r}")
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise UnsafePath(f"{path} resolves outside {root}")
    return path
