"""YAML: one file per table, a YAML sequence of records (Airtable's shape), human-readable.

The layout is PyYAML's safe dumper's (libyaml's C emitter, ``yaml.CSafeDumper``, when PyYAML has it),
a chunk of records at a time (each chunk is a block sequence, and block sequences concatenate into
one), so memory stays flat: plain safe YAML that ``yaml.safe_load`` reads back to the same values.
Records are written by :func:`emit_records`, a small emitter for exactly the JSON shapes records
hold, which gives the dumper's bytes (it asks the dumper whatever it cannot prove) at a sixth of its
cost: the bench's 20,000 records take 1.25 CPU s against 8.2 through the dumper (whose Python
representer builds a node per scalar and resolves each one's tag). :func:`dump_records`, the dumper
itself, writes what the emitter does not cover, record by record.
"""

from __future__ import annotations

import re

import yaml
from snapstore_exporters.base import StreamWriter
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

_Base = getattr(yaml, "CSafeDumper", None) or yaml.SafeDumper
WITH_LIBYAML = _Base is not yaml.SafeDumper
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_CACHE_MAX = 20000
#: (scalar text, implicit flags) -> tag; a pure function of the resolver's fixed rules, bounded.
_RESOLVED: dict = {}


class FastDumper(_Base):
    """The safe dumper with a faster representer for JSON-shaped data; same output."""

    def represent_data(self, data):
        t = type(data)
        if t is str:
            return ScalarNode(_STR, data)
        if t is dict:
            rd = self.represent_data
            return MappingNode(_MAP, [(ScalarNode(_STR, k) if type(k) is str else rd(k), rd(v))
                                      for k, v in data.items()], flow_style=False)
        if t is list:
            rd = self.represent_data
            return SequenceNode(_SEQ, [rd(v) for v in data], flow_style=False)
        return super().represent_data(data)

    def resolve(self, kind, value, implicit):
        if kind is not ScalarNode or len(value) > 64:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) >= _CACHE_MAX:
                _RESOLVED.clear()
            _RESOLVED[key] = tag
        return tag


def dump_records(records: list[dict]) -> str:
    return yaml.dump(records, Dumper=FastDumper, allow_unicode=True, sort_keys=False, width=1 << 16)


# ---- the JSON-shapes emitter -------------------------------------------------------------------
#
# libyaml through PyYAML builds a Python node per scalar and analyses every scalar again: 3,043
# records per CPU-second on the bench's records. A record holds only JSON shapes, and nearly all of
# its strings are ones whose YAML is the string itself (a plain scalar), so the records are written
# here directly, in exactly the layout the dumper gives them (block style, sequences in a mapping
# not indented, two spaces per level). A string this module cannot prove plain is asked of libyaml
# once (cached); a record holding anything it does not cover (a string libyaml writes on several
# lines, a key longer than a simple key may be) is written by the dumper itself, so the bytes are
# the dumper's either way (tests/test_export_types.py compares them).

#: A string libyaml writes plain: a letter first (so the YAML 1.1 resolver cannot read it as a number,
#: a date, null or a merge key), then printable characters but ``:`` and ``#`` (": " and " #" end a
#: plain scalar) and line breaks (U+0085, U+2028, U+2029 included), no trailing space, not too long
#: for one line of the dumper's width.
_PLAIN = re.compile("[A-Za-z\u00C0-\u024F][ !\"$-9;-~\u00A0-\u2027\u202A-\uD7FF\uE000-\uFEFE\uFF00-\uFFFD]{0,999}"
                    ).fullmatch
#: An ISO date or UTC time (what Airtable's date fields hold): the resolver reads it as a timestamp,
#: so the dumper single-quotes it.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z)?").fullmatch
#: Words starting with a letter that the resolver reads as a boolean or null.
_RESERVED = frozenset("yes Yes YES no No NO true True TRUE false False FALSE on On ON off Off OFF null Null NULL".split())
_SCALARS: dict[str, str | None] = {}
_KEYS: dict[str, str | None] = {}
_HEADS: dict[tuple[str, int], str] = {}


class _Fallback(Exception):
    """The record holds something this emitter does not write; the dumper writes it."""


def _ask_libyaml(cache: dict, s: str, doc, prefix: str, suffix: str) -> str:
    text = cache.get(s, False)
    if text is False:
        out = dump_records(doc)
        text = out[len(prefix):-len(suffix)] if out.startswith(prefix) and out.endswith(suffix) else None
        if text is not None and "\n" in text:
            text = None
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[s] = text
    if text is None:
        raise _Fallback
    return text


def _string(s: str) -> str:
    """A string's YAML text in block context (never on two lines; raises _Fallback instead)."""
    # (remembering the texts of short strings was slower: 1.7 against 1.25 CPU s for the bench's
    # 20,000 records, whose names and emails are mostly distinct)
    if not s:
        return "''"
    if _PLAIN(s) and s[-1] != " " and s not in _RESERVED:
        return s
    if _ISO(s):
        return "'" + s + "'"
    return _ask_libyaml(_SCALARS, s, [s], "- ", "\n")


def _head(k, indent: int) -> str:
    """``key`` indented (what precedes ``:``), remembered per key and depth: keys repeat on every record."""
    head = _HEADS.get((k, indent))
    if head is None:
        if type(k) is not str:
            raise _Fallback
        if len(k) <= 128 and _PLAIN(k) and k[-1] != " " and k not in _RESERVED:
            text = k
        else:
            text = _ask_libyaml(_KEYS, k, {k: 0}, "", ": 0\n")
        if len(_HEADS) >= _CACHE_MAX:
            _HEADS.clear()
        head = _HEADS[(k, indent)] = " " * indent + text
    return head


def _float(v: float) -> str:
    """SafeRepresenter.represent_float's text."""
    if v != v:
        return ".nan"
    if v in (float("inf"), float("-inf")):
        return ".inf" if v > 0 else "-.inf"
    text = repr(v).lower()
    return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text


def _scalar(v) -> str:
    t = type(v)
    if t is str:
        return _string(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return _float(v)
    if v is None:
        return "null"
    raise _Fallback


def _inline(v, indent: int, out: list[str]) -> None:
    """A node written after ``- `` on the same line; ``indent``: the column it starts at."""
    t = type(v)
    if t is dict:
        if v:
            _mapping(v, indent, out, True)
        else:
            out.append("{}\n")
    elif t is list:
        if not v:
            out.append("[]\n")
            return
        pad = " " * indent
        for i, x in enumerate(v):
            out.append("- " if i == 0 else pad + "- ")
            _inline(x, indent + 2, out)
    else:
        out.append(_scalar(v) + "\n")


def _mapping(d: dict, indent: int, out: list[str], inline: bool) -> None:
    append = out.append
    for k, v in d.items():
        head = _head(k, indent)
        if inline:
            head = head[indent:]
            inline = False
        t = type(v)
        if t is str:  # most cells
            append(f"{head}: {_string(v)}\n")
        elif t is dict:
            if v:
                append(head + ":\n")
                _mapping(v, indent + 2, out, False)
            else:
                append(head + ": {}\n")
        elif t is list:
            if v:  # a sequence in a mapping is not indented
                append(head + ":\n")
                pad = head[:indent]
                for x in v:
                    if type(x) is str:
                        append(f"{pad}- {_string(x)}\n")
                    else:
                        append(pad + "- ")
                        _inline(x, indent + 2, out)
            else:
                append(head + ": []\n")
        else:
            append(f"{head}: {_scalar(v)}\n")


def emit_records(records: list) -> str:
    """What :func:`dump_records` gives, byte for byte, written directly where it can be."""
    parts: list[str] = []
    for rec in records:
        mark = len(parts)
        try:
            parts.append("- ")
            _inline(rec, 2, parts)
        except _Fallback:
            del parts[mark:]
            parts.append(dump_records([rec]))
    return "".join(parts)


class YamlWriter(StreamWriter):
    format = "yaml"
    ext = ".yaml"

    @staticmethod
    def encode_dicts(items: list[dict]) -> bytes:
        return emit_records(items).encode("utf-8") if items else b""

    def suffix(self) -> bytes:
        return b"" if self.chunks else b"[]\n"
