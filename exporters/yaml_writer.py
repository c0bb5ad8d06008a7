"""YAML: one file per table, a YAML sequence of records (Airtable's shape), human-readable.

Written with libyaml's C emitter (``yaml.CSafeDumper``) when PyYAML has it, a chunk of records at a
time (each chunk is dumped as a block sequence, and block sequences concatenate into one), so memory
stays flat. PyYAML's Python representer is most of the cost, so scalars, lists and dicts are represented directly
(no anchors/aliases ever) and the implicit-type resolver results are cached; everything it emits is
plain safe YAML that ``yaml.safe_load`` reads back to the same values.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from exporters.base import StreamWriter

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


class YamlWriter(StreamWriter):
    format = "yaml"
    ext = ".yaml"

    @staticmethod
    def encode_dicts(items: list[dict]) -> bytes:
        return dump_records(items).encode("utf-8") if items else b""

    def suffix(self) -> bytes:
        return b"" if self.chunks else b"[]\n"
