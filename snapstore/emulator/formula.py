"""A small Airtable formula evaluator: the subset pyairtable.formulas produces (and a little more),
used for ``filterByFormula`` and for computing the emulator's own formula fields.

Values: None (blank), str, int/float (NaN allowed), bool, list, datetime (UTC), and ``ERROR``."""

from __future__ import annotations

import datetime as dt
import math
import re
import urllib.parse
from collections.abc import Callable
from typing import Any


class FormulaSyntaxError(ValueError):
    """The formula cannot be parsed, or calls an unknown function."""


class _ErrorValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "#ERROR!"


ERROR = _ErrorValue()
UTC = dt.UTC

_TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<field>\{(?:[^}\\]|\\.)*\})
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<=|>=|<>|[=<>&+\-*/(),])
    )""",
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), s, flags=re.DOTALL)


def tokenize(text: str) -> list[tuple[str, Any]]:
    pos, out = 0, []
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaSyntaxError(f"unexpected character at position {pos}: {text[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "num":
            out.append(("num", float(val) if any(c in val for c in ".eE") else int(val)))
        elif kind == "str":
            out.append(("str", _unescape(val[1:-1])))
        elif kind == "field":
            out.append(("field", _unescape(val[1:-1])))
        else:
            out.append((kind, val))
    out.append(("end", None))
    return out


# ---- AST: tuples ("lit", v) ("field", name) ("call", NAME, [args]) ("bin", op, a, b) ("neg", a)

_BINARY_PREC = {"=": 1, "!=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4}


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self) -> tuple[str, Any]:
        return self.toks[self.i]

    def take(self) -> tuple[str, Any]:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, op: str) -> None:
        k, v = self.take()
        if k != "op" or v != op:
            raise FormulaSyntaxError(f"expected {op!r}, got {v!r}")

    def parse(self) -> tuple:
        node = self.expr(0)
        if self.peek()[0] != "end":
            raise FormulaSyntaxError(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self, min_prec: int) -> tuple:
        left = self.unary()
        while True:
            k, v = self.peek()
            if k != "op" or v not in _BINARY_PREC:
                return left
            prec = _BINARY_PREC[v]
            if prec <= min_prec:
                return left
            self.take()
            right = self.expr(prec)
            left = ("bin", "!=" if v == "<>" else v, left, right)

    def unary(self) -> tuple:
        k, v = self.peek()
        if k == "op" and v == "-":
            self.take()
            return ("neg", self.unary())
        if k == "op" and v == "+":
            self.take()
            return self.unary()
        return self.primary()

    def primary(self) -> tuple:
        k, v = self.take()
        if k in ("num", "str"):
            return ("lit", v)
        if k == "field":
            return ("field", v)
        if k == "op" and v == "(":
            node = self.expr(0)
            self.expect(")")
            return node
        if k == "name":
            name = v.upper()
            if self.peek() == ("op", "("):
                self.take()
                args: list[tuple] = []
                if self.peek() != ("op", ")"):
                    while True:
                        args.append(self.expr(0))
                        if self.peek() == ("op", ","):
                            self.take()
                            continue
                        break
                self.expect(")")
                if name not in FUNCTIONS:
                    raise FormulaSyntaxError(f"unknown function {v}()")
                return ("call", name, args)
            if name in ("TRUE", "FALSE"):
                return ("lit", name == "TRUE")
            # a bare word is a field name: Airtable needs braces only around names with spaces or
            # symbols (``text != 'x'``, ``Price * Quantity``); TRUE/FALSE stay constants
            return ("field", v)
        raise FormulaSyntaxError(f"unexpected {v!r}")


def parse(text: str) -> tuple:
    if not text or not text.strip():
        raise FormulaSyntaxError("empty formula")
    return _Parser(tokenize(text)).parse()


def field_refs(node: tuple) -> list[str]:
    """Field names/ids referenced by a parsed formula, in order of first appearance."""
    out: list[str] = []

    def walk(n: tuple) -> None:
        if n[0] == "field":
            if n[1] not in out:
                out.append(n[1])
        elif n[0] == "call":
            for a in n[2]:
                walk(a)
        elif n[0] == "bin":
            walk(n[2])
            walk(n[3])
        elif n[0] == "neg":
            walk(n[1])

    walk(node)
    return out


# ---- evaluation


class Context:
    """What a formula can see of one record. ``field(name_or_id)`` returns the formula value of a cell
    (raise KeyError for unknown fields)."""

    def __init__(
        self,
        field: Callable[[str], Any],
        record_id: str = "",
        created_time: str = "",
        modified_time: str = "",
        now: float | None = None,
    ) -> None:
        self.field = field
        self.record_id = record_id
        self.created_time = created_time
        self.modified_time = modified_time
        self.now = now


class UnknownField(KeyError):
    pass


def evaluate(node: tuple, ctx: Context) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "field":
        return ctx.field(node[1])
    if kind == "neg":
        v = to_number(evaluate(node[1], ctx))
        return ERROR if v is ERROR else -v
    if kind == "bin":
        return _binary(node[1], evaluate(node[2], ctx), evaluate(node[3], ctx))
    if kind == "call":
        name, args = node[1], node[2]
        if name in _LAZY:
            return _LAZY[name](args, ctx)
        vals = [evaluate(a, ctx) for a in args]
        return FUNCTIONS[name](ctx, *vals)
    raise FormulaSyntaxError(f"bad node {kind}")


def parse_datetime(v: Any) -> dt.datetime | None:
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, list) and len(v) == 1:
        v = v[0]
    if not isinstance(v, str) or not v:
        return None
    s = v.strip()
    try:
        if len(s) == 10:
            d = dt.date.fromisoformat(s)
            return dt.datetime(d.year, d.month, d.day, tzinfo=UTC)
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        d = dt.datetime.fromisoformat(s)
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    except ValueError:
        return None


def format_datetime(d: dt.datetime) -> str:
    d = d.astimezone(UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def to_number(v: Any) -> Any:
    if v is ERROR:
        return ERROR
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, dt.datetime):
        return v.timestamp()
    if isinstance(v, list):
        if not v:
            return 0
        if len(v) == 1:
            return to_number(v[0])
        return math.nan
    if isinstance(v, str):
        s = v.strip().replace(",", "")
        if not s:
            return 0
        try:
            return int(s) if re.fullmatch(r"[+-]?\d+", s) else float(s)
        except ValueError:
            return math.nan
    return math.nan


def to_text(v: Any) -> Any:
    if v is ERROR:
        return ERROR
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dt.datetime):
        return format_datetime(v)
    if isinstance(v, list):
        return ", ".join(to_text(x) if to_text(x) is not ERROR else "#ERROR!" for x in v)
    if isinstance(v, dict):
        return str(v.get("name") or v.get("text") or v.get("label") or v.get("filename") or "")
    return str(v)


def truthy(v: Any) -> bool:
    """Whether filterByFormula keeps a record: not 0, false, "", NaN, [], blank or an error."""
    if v is None or v is ERROR or v is False:
        return False
    if isinstance(v, (int, float)):
        return not (v == 0 or (isinstance(v, float) and math.isnan(v)))
    if isinstance(v, (str, list)):
        return bool(v)
    return True


def _is_blank(v: Any) -> bool:
    return v is None or v == "" or v == [] or v is False


def _compare(op: str, a: Any, b: Any) -> Any:
    if a is ERROR or b is ERROR:
        return ERROR
    if isinstance(a, list):
        a = to_text(a) if len(a) != 1 else a[0]
    if isinstance(b, list):
        b = to_text(b) if len(b) != 1 else b[0]
    if isinstance(a, dt.datetime) or isinstance(b, dt.datetime):
        da, db = parse_datetime(a), parse_datetime(b)
        if da is None or db is None:
            x, y = to_text(a), to_text(b)
        else:
            x, y = da, db
    elif isinstance(a, str) and isinstance(b, str):
        x, y = a, b
    elif isinstance(a, str) and not isinstance(b, str) or isinstance(b, str) and not isinstance(a, str):
        # number vs string: equal when blank/zero, else compare as numbers when the string is numeric
        s = a if isinstance(a, str) else b
        n = b if isinstance(a, str) else a
        if s == "" and _is_blank(n):
            return op in ("=", "<=", ">=")
        sn = to_number(s)
        if isinstance(sn, float) and math.isnan(sn):
            x, y = to_text(a), to_text(b)
        else:
            x, y = to_number(a), to_number(b)
    else:
        x, y = to_number(a), to_number(b)
    try:
        if op == "=":
            return x == y
        if op == "!=":
            return x != y
        if op == "<":
            return x < y
        if op == ">":
            return x > y
        if op == "<=":
            return x <= y
        if op == ">=":
            return x >= y
    except TypeError:
        return False
    raise FormulaSyntaxError(op)


def _binary(op: str, a: Any, b: Any) -> Any:
    if op in ("=", "!=", "<", ">", "<=", ">="):
        return _compare(op, a, b)
    if op == "&":
        x, y = to_text(a), to_text(b)
        return ERROR if ERROR in (x, y) else x + y
    if op == "+" and isinstance(a, dt.datetime) and isinstance(b, (int, float)):
        return a + dt.timedelta(seconds=b)
    if op == "-" and isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a - b).total_seconds()
    x, y = to_number(a), to_number(b)
    if x is ERROR or y is ERROR:
        return ERROR
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:
            return math.nan if x == 0 else ERROR
        return x / y
    raise FormulaSyntaxError(op)


# ---- functions


def _flat(vals: tuple) -> list:
    out: list = []
    for v in vals:
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out


def _nums(vals: tuple) -> list:
    return [n for n in (to_number(v) for v in _flat(vals) if v is not None and v != "") if n is not ERROR]


def _lazy_if(args: list, ctx: Context) -> Any:
    if len(args) < 2:
        raise FormulaSyntaxError("IF() needs 2 or 3 arguments")
    cond = evaluate(args[0], ctx)
    if cond is ERROR:
        return ERROR
    if truthy(cond):
        return evaluate(args[1], ctx)
    return evaluate(args[2], ctx) if len(args) > 2 else None


def _lazy_and(args: list, ctx: Context) -> Any:
    for a in args:
        v = evaluate(a, ctx)
        if v is ERROR:
            return ERROR
        if not truthy(v):
            return False
    return True


def _lazy_or(args: list, ctx: Context) -> Any:
    for a in args:
        v = evaluate(a, ctx)
        if v is ERROR:
            return ERROR
        if truthy(v):
            return True
    return False


def _lazy_iserror(args: list, ctx: Context) -> Any:
    v = evaluate(args[0], ctx)
    return v is ERROR or (isinstance(v, float) and math.isnan(v))


_LAZY = {"IF": _lazy_if, "AND": _lazy_and, "OR": _lazy_or, "ISERROR": _lazy_iserror}


def _dt_arg(v: Any) -> Any:
    d = parse_datetime(v)
    return ERROR if d is None else d


def _datetime_parse(ctx: Context, s: Any, fmt: Any = None, locale: Any = None) -> Any:
    return _dt_arg(s)


def _is_after(ctx: Context, a: Any, b: Any) -> Any:
    da, db = _dt_arg(a), _dt_arg(b)
    return ERROR if ERROR in (da, db) else da > db


def _is_before(ctx: Context, a: Any, b: Any) -> Any:
    da, db = _dt_arg(a), _dt_arg(b)
    return ERROR if ERROR in (da, db) else da < db


def _is_same(ctx: Context, a: Any, b: Any, unit: Any = None) -> Any:
    da, db = _dt_arg(a), _dt_arg(b)
    if ERROR in (da, db):
        return ERROR
    u = (unit or "").lower()
    fmt = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d", "hour": "%Y-%m-%dT%H",
           "minute": "%Y-%m-%dT%H:%M", "second": "%Y-%m-%dT%H:%M:%S"}.get(u.rstrip("s"))
    return da.strftime(fmt) == db.strftime(fmt) if fmt else da == db


def _now(ctx: Context) -> Any:
    import time

    t = ctx.now if ctx.now is not None else time.time()
    return dt.datetime.fromtimestamp(t, UTC)


def _round(ctx: Context, v: Any, p: Any = 0) -> Any:
    n = to_number(v)
    if n is ERROR or (isinstance(n, float) and math.isnan(n)):
        return n
    q = int(to_number(p))
    r = math.floor(n * 10**q + 0.5) / 10**q
    return int(r) if q <= 0 else r


def _find(ctx: Context, needle: Any, hay: Any, start: Any = 0, *, fold: bool = False) -> Any:
    n, h = to_text(needle), to_text(hay)
    if fold:
        n, h = n.lower(), h.lower()
    s = max(int(to_number(start)) - 1, 0)
    i = h.find(n, s)
    return i + 1 if i >= 0 else (0 if not fold else None)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "IF": lambda ctx, *a: None,
    "AND": lambda ctx, *a: None,
    "OR": lambda ctx, *a: None,
    "ISERROR": lambda ctx, *a: None,
    "NOT": lambda ctx, v=None: ERROR if v is ERROR else not truthy(v),
    "XOR": lambda ctx, *a: sum(truthy(v) for v in a) % 2 == 1,
    "TRUE": lambda ctx: True,
    "FALSE": lambda ctx: False,
    "BLANK": lambda ctx: None,
    "ERROR": lambda ctx, *a: ERROR,
    "RECORD_ID": lambda ctx: ctx.record_id,
    "CREATED_TIME": lambda ctx: parse_datetime(ctx.created_time),
    "LAST_MODIFIED_TIME": lambda ctx, *fields: parse_datetime(ctx.modified_time or ctx.created_time),
    "NOW": _now,
    "TODAY": lambda ctx: _now(ctx).replace(hour=0, minute=0, second=0, microsecond=0),
    "DATETIME_PARSE": _datetime_parse,
    "DATESTR": lambda ctx, d: ERROR if _dt_arg(d) is ERROR else _dt_arg(d).strftime("%Y-%m-%d"),
    "IS_AFTER": _is_after,
    "IS_BEFORE": _is_before,
    "IS_SAME": _is_same,
    "YEAR": lambda ctx, d: ERROR if _dt_arg(d) is ERROR else _dt_arg(d).year,
    "MONTH": lambda ctx, d: ERROR if _dt_arg(d) is ERROR else _dt_arg(d).month,
    "DAY": lambda ctx, d: ERROR if _dt_arg(d) is ERROR else _dt_arg(d).day,
    "LEN": lambda ctx, s: len(to_text(s)),
    "LOWER": lambda ctx, s: to_text(s).lower(),
    "UPPER": lambda ctx, s: to_text(s).upper(),
    "TRIM": lambda ctx, s: to_text(s).strip(),
    "T": lambda ctx, s: s if isinstance(s, str) else "",
    "CONCATENATE": lambda ctx, *a: "".join(to_text(v) for v in a),
    "LEFT": lambda ctx, s, n: to_text(s)[: int(to_number(n))],
    "RIGHT": lambda ctx, s, n: to_text(s)[-int(to_number(n)) :] if int(to_number(n)) else "",
    "MID": lambda ctx, s, i, n: to_text(s)[int(to_number(i)) - 1 : int(to_number(i)) - 1 + int(to_number(n))],
    "FIND": lambda ctx, n, h, s=0: _find(ctx, n, h, s),
    "SEARCH": lambda ctx, n, h, s=0: _find(ctx, n, h, s, fold=True),
    "SUBSTITUTE": lambda ctx, s, old, new, *_: to_text(s).replace(to_text(old), to_text(new)),
    "REPT": lambda ctx, s, n: to_text(s) * int(to_number(n)),
    "ENCODE_URL_COMPONENT": lambda ctx, s: urllib.parse.quote(to_text(s), safe=""),
    "REGEX_MATCH": lambda ctx, s, r: re.search(to_text(r), to_text(s)) is not None,
    "ARRAYJOIN": lambda ctx, a, sep=", ": to_text(sep).join(to_text(v) for v in _flat((a,)) if v is not None),
    "VALUE": lambda ctx, s: to_number(s),
    "INT": lambda ctx, v: ERROR if to_number(v) is ERROR else math.floor(to_number(v)),
    "ABS": lambda ctx, v: ERROR if to_number(v) is ERROR else abs(to_number(v)),
    "ROUND": _round,
    "MOD": lambda ctx, a, b: ERROR if to_number(b) == 0 else math.fmod(to_number(a), to_number(b)),
    "SUM": lambda ctx, *a: sum(_nums(a)),
    "MAX": lambda ctx, *a: max(_nums(a), default=0),
    "MIN": lambda ctx, *a: min(_nums(a), default=0),
    "AVERAGE": lambda ctx, *a: (sum(_nums(a)) / len(_nums(a))) if _nums(a) else 0,
    "COUNT": lambda ctx, *a: sum(1 for v in _flat(a) if isinstance(v, (int, float)) and not isinstance(v, bool)),
    "COUNTA": lambda ctx, *a: sum(1 for v in _flat(a) if not _is_blank(v)),
    "COUNTALL": lambda ctx, *a: len(_flat(a)),
}


def compile_formula(text: str) -> tuple:
    """Parse ``text``; raises FormulaSyntaxError."""
    return parse(text)
