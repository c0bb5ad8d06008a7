"""Renderings of a Diff and of a record's history: text (a terminal), JSON (scripts), Markdown
(a ticket). Counts first, then the records. ``limit`` caps the records listed per table and kind
(None = all); the counts are always complete."""

from __future__ import annotations

from collections.abc import Callable

import click
import orjson

from snapstore import units
from snapstore.constants import DIFF_FORMATS
from snapstore.ops.diff import (
    Diff,
    FieldChange,
    RecordChange,
    SchemaChange,
    TableDiff,
    Version,
    options_summary,
    short_value,
)
from snapstore.ops.diff_comments import comment_counts, reply_mark, timeline_lines

FORMATS = DIFF_FORMATS
#: Long-text diffs longer than this are cut in text and Markdown (JSON keeps every line).
MAX_DIFF_LINES = 30


def _when(s) -> str:
    return s.time.strftime("%Y-%m-%d %H:%M:%S UTC")


def _n(x: int) -> str:
    return f"{x:,}"


def _size(n: int | None) -> str:
    return "?" if n is None else units.size(n)


def _styler(color: bool) -> Callable[..., str]:
    def st(text: str, **kw) -> str:
        return click.style(text, **kw) if color else text

    return st


def _summary_line(d: Diff) -> str:
    t = d.totals
    if d.empty:
        return "no differences"
    parts = [f"{_n(t['added'])} added", f"{_n(t['removed'])} removed", f"{_n(t['changed'])} changed"]
    n_rec = t["added"] + t["removed"] + t["changed"]
    verb = "differs" if t["tables"] == 1 else "differ"
    s = (f"{t['tables']} of {units.count(d.tables_compared, 'table')} {verb}: " + ", ".join(parts)
         + f" {units.plural('record', n_rec)}")
    if t["schema_changes"]:
        s += f"; {units.count(t['schema_changes'], 'schema change')}"
    if t.get("comments"):
        s += f"; {units.count(t['comments'], 'comment change')}"
    return s


def comment_lines(changes: dict) -> list[tuple[str, str]]:
    """(style sign, line) for one record's comment changes: + added, ~ edited (old → new), - deleted."""
    out = []
    for e in changes["added"]:
        out.append(("+", f"+ comment {e['author']}{reply_mark(e)} {e['time']}: {short_value(e['text'])}"))
    for e in changes["edited"]:
        out.append(("~", f"~ comment {e['author']}{reply_mark(e)} {e['time']}: {short_value(e['old'])} → "
                         f"{short_value(e['new'])}"))
    for e in changes["deleted"]:
        out.append(("-", f"- comment {e['author']}{reply_mark(e)} {e['time']}: {short_value(e['text'])}"))
    return out


def _table_counts(td: TableDiff) -> str:
    c = td.counts
    if td.status == "not captured":
        return td.note or "not captured"
    if td.status == "added":
        return f"table added: +{units.count(c['added'], 'record')}"
    if td.status == "removed":
        return f"table removed: -{units.count(c['removed'], 'record')}"
    head = ""
    recs = ""
    if td.records_a is not None and td.records_b is not None:
        recs = f"   ({_n(td.records_a)} → {_n(td.records_b)} records)"
    notes = ""
    if td.comments:
        k = comment_counts(td.comments)
        notes = f"   comments +{_n(k['added'])} ~{_n(k['edited'])} -{_n(k['deleted'])}"
    return f"{head}+{_n(c['added'])} -{_n(c['removed'])} ~{_n(c['changed'])}{recs}{notes}"


def schema_line(c: SchemaChange) -> tuple[str, str]:
    """(sign, description) of one schema change."""
    t = c.table or c.table_id or ""
    f = f"{t}.{c.field}" if c.field else t
    k = c.kind
    if k == "base_added":
        return "+", f"base added: {c.base_name} ({c.base_id})"
    if k == "base_removed":
        return "-", f"base removed: {c.base_name} ({c.base_id})"
    if k == "table_added":
        return "+", f"table added: {t} ({c.table_id})"
    if k == "table_removed":
        return "-", f"table removed: {t} ({c.table_id})"
    if k == "table_renamed":
        return "~", f"table renamed: {c.old} → {c.new} ({c.table_id})"
    if k == "field_added":
        return "+", f"field added: {f} ({c.new}, {c.field_id})"
    if k == "field_removed":
        return "-", f"field removed: {f} ({c.old}, {c.field_id})"
    if k == "field_renamed":
        return "~", f"field renamed: {t}.{c.old} → {c.new} ({c.field_id})"
    if k == "field_type_changed":
        return "~", f"field type changed: {f}: {c.old} → {c.new}"
    if k == "field_options_changed":
        return "~", f"field options changed: {f}: " + "; ".join(options_summary(c.old, c.new) or ["(reordered)"])
    if k == "field_description_changed":
        return "~", f"field description changed: {f}: {short_value(c.old, 40)} → {short_value(c.new, 40)}"
    if k == "primary_field_changed":
        return "~", f"primary field changed: {t}: {c.old} → {c.new}"
    return "~", f"{k}: {f}"


def _att(e: dict) -> str:
    h = e.get("content_hash")
    return f"{e.get('filename') or e['id']} ({_size(e.get('size'))}{', ' + h[:8] if h else ''})"


def field_lines(fc: FieldChange) -> list[tuple[str, str]]:
    """(style, line) pairs describing one field change; style in '', '+', '-', '@'."""
    out: list[tuple[str, str]] = []
    if fc.attachments is not None:
        a = fc.attachments
        if a.get("reordered"):
            return [("", f"{fc.label}: same files, reordered")]
        out.append(("", f"{fc.label}:"))
        out += [("-", f"- {_att(e)}") for e in a["removed"]]
        out += [("+", f"+ {_att(e)}") for e in a["added"]]
        return out
    if fc.text_diff is not None:
        out.append(("", f"{fc.label}:"))
        shown = fc.text_diff if len(fc.text_diff) <= MAX_DIFF_LINES else fc.text_diff[: MAX_DIFF_LINES - 1]
        if len(shown) < len(fc.text_diff):
            shown = [*shown, f"… {len(fc.text_diff) - len(shown)} more diff line(s) (--format json has all)"]
        for ln in shown:
            style = "@" if ln.startswith("@@") else "+" if ln.startswith("+") else "-" if ln.startswith("-") else ""
            out.append((style, ln))
        return out
    if fc.items is not None and fc.old and fc.new:
        parts = [f"-{_json_value(x, 40)}" for x in fc.items["removed"]] + [
            f"+{_json_value(x, 40)}" for x in fc.items["added"]
        ]
        if parts:
            return [("", f"{fc.label}: " + " ".join(parts))]
    if isinstance(fc.old, dict) and isinstance(fc.new, dict):
        # an object (a collaborator, a button, an AI field's state): only the keys that changed,
        # so a cut never hides the change
        keys = [k for k in sorted(set(fc.old) | set(fc.new)) if fc.old.get(k) != fc.new.get(k)]
        return [("", f"{fc.label}: " + ", ".join(
            f"{k}: {_json_value(fc.old.get(k), 40)} → {_json_value(fc.new.get(k), 40)}" for k in keys))]
    return [("", f"{fc.label}: {_json_value(fc.old)} → {_json_value(fc.new)}")]


def _json_value(v, width: int = 80) -> str:
    """A cell value as JSON (what the API sends, not Python's repr), cut to ``width``; empty
    values (Airtable omits them) read "(empty)"."""
    if v is None:
        return "(empty)"
    text = orjson.dumps(v).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _listed(recs: list[RecordChange], limit: int | None) -> tuple[list[RecordChange], int]:
    if limit is None or limit <= 0 or len(recs) <= limit:
        return recs, 0
    return recs[:limit], len(recs) - limit


# ---- text --------------------------------------------------------------------------------------


def render_text(d: Diff, *, color: bool = False, limit: int | None = 100) -> str:
    st = _styler(color)
    sign_style = {"+": {"fg": "green"}, "-": {"fg": "red"}, "~": {"fg": "yellow"}, "@": {"fg": "cyan"}, "": {}}
    lines = [
        st(f"diff {d.a.id} → {d.b.id}", bold=True) + f"   ({_when(d.a)} → {_when(d.b)})",
        _summary_line(d),
    ]
    if d.empty:
        return "\n".join(lines)
    if d.tables:
        lines.append("")
        w = max(len(f"{t.base_name} / {t.name}") for t in d.tables)
        for td in d.tables:
            lines.append(f"  {td.base_name + ' / ' + td.name:<{w}}  {_table_counts(td)}")
    if d.schema:
        lines += ["", st("Schema", bold=True)]
        for c in d.schema:
            sign, text = schema_line(c)
            lines.append(f"  {st(sign, **sign_style[sign])} {c.base_name}: {text}")
    for td in d.tables:
        if td.status == "not captured" or td.empty:
            continue
        lines += ["", st(f"{td.base_name} / {td.name}", bold=True) + f"  ({td.table_id})"]
        for kind, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
            recs, more = _listed(getattr(td, kind), limit)
            for rc in recs:
                label = f"  {rc.label}" if rc.label else ""
                lines.append(f"  {st(sign + ' ' + rc.record_id, **sign_style[sign])}{label}")
                if rc.fields is not None and kind == "changed":
                    if not rc.fields:
                        lines.append("      (no visible field change: attachment or volatile metadata only)")
                    for fc in rc.fields:
                        for i, (style, ln) in enumerate(field_lines(fc)):
                            lines.append(("      " if i == 0 else "          ") + st(ln, **sign_style[style]))
            if more:
                lines.append(f"  … and {_n(more)} more {kind} (use --limit 0 to list all)")
        for rid, ch in list(td.comments.items())[: limit or None]:
            lines.append(f"  {st('@ ' + rid, **sign_style['@'])}  comments")
            lines += ["      " + st(ln, **sign_style[sign]) for sign, ln in comment_lines(ch)]
        if limit and len(td.comments) > limit:
            lines.append(f"  … and {_n(len(td.comments) - limit)} more records with comment changes")
    return "\n".join(lines)


# ---- markdown ----------------------------------------------------------------------------------


def _md(s: str) -> str:
    return s.replace("|", "\\|")


def render_markdown(d: Diff, *, limit: int | None = 100) -> str:
    out = [f"## snapstore diff `{d.a.id}` → `{d.b.id}`", "", f"{_when(d.a)} → {_when(d.b)}", "",
           f"**{_summary_line(d)}**"]
    if d.empty:
        return "\n".join(out) + "\n"
    if d.tables:
        out += ["", "| Base | Table | Status | Added | Removed | Changed | Records |", "|---|---|---|--:|--:|--:|---|"]
        for td in d.tables:
            c = td.counts
            ra = _n(td.records_a) if td.records_a is not None else "–"
            rb = _n(td.records_b) if td.records_b is not None else "–"
            status = td.note if td.status == "not captured" else td.status
            out.append(f"| {_md(td.base_name)} | {_md(td.name)} | {_md(status or '')} | {_n(c['added'])} | "
                       f"{_n(c['removed'])} | {_n(c['changed'])} | {ra} → {rb} |")
    if d.schema:
        out += ["", "### Schema", ""]
        for c in d.schema:
            _sign, text = schema_line(c)
            out.append(f"- {c.base_name}: {text}")
    for td in d.tables:
        if td.status == "not captured" or td.empty:
            continue
        out += ["", f"### {td.base_name} / {td.name}", ""]
        for kind in ("added", "removed", "changed"):
            recs, more = _listed(getattr(td, kind), limit)
            if not recs:
                continue
            out.append(f"**{kind.capitalize()}** ({_n(len(getattr(td, kind)))}):")
            out.append("")
            for rc in recs:
                out.append(f"- `{rc.record_id}`" + (f" {rc.label}" if rc.label else ""))
                for fc in rc.fields or []:
                    fl = field_lines(fc)
                    if fc.text_diff is not None:
                        out += [f"  - **{fc.label}**:", "", "    ```diff"]
                        out += ["    " + ln for _s, ln in fl[1:]]
                        out += ["    ```", ""]
                    elif len(fl) == 1:
                        name, _, rest = fl[0][1].partition(": ")
                        out.append(f"  - **{name}**: {rest}")
                    else:
                        out.append(f"  - **{fc.label}**: " + ", ".join(ln for _s, ln in fl[1:]))
            if more:
                out.append(f"- … and {more:,} more")
            out.append("")
        if td.comments:
            out += [f"**Comments** ({_n(len(td.comments))} records):", ""]
            for rid, ch in list(td.comments.items())[: limit or None]:
                out.append(f"- `{rid}`")
                out += [f"  - {_md(ln)}" for _sign, ln in comment_lines(ch)]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# ---- json --------------------------------------------------------------------------------------


def render_json(d: Diff, *, limit: int | None = None) -> str:
    doc = d.to_dict()
    if limit:
        for t in doc["tables"]:
            for kind in ("added", "removed", "changed"):
                if len(t[kind]) > limit:
                    t[kind] = t[kind][:limit]
                    t["truncated"] = True
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def render(d: Diff, fmt: str, *, color: bool = False, limit: int | None = None) -> str:
    if fmt == "json":
        return render_json(d, limit=limit)
    if fmt == "markdown":
        return render_markdown(d, limit=100 if limit is None else limit)
    return render_text(d, color=color, limit=100 if limit is None else limit)


# ---- history -----------------------------------------------------------------------------------


def _span(v: Version) -> str:
    n = len(v.snapshots)
    if n == 1:
        return f"in {v.first.id} ({_when(v.first)})"
    return f"{v.first.id} … {v.last.id} ({_when(v.first)} → {_when(v.last)}, {n} snapshots)"


def _ending(v: Version) -> str | None:
    if v.ended == "deleted":
        return f"deleted in {v.ended_in.id} ({_when(v.ended_in)})"
    if v.ended == "table absent":
        return "its table is not in the later snapshots" + (f" (from {v.ended_in.id})" if v.ended_in else "")
    return None


def _began(v: Version) -> str:
    """How a version began, as a person reads it: the first version is the snapshot that first saw
    the record (it may have been created long before the first snapshot)."""
    return "first seen" if v.began == "created" else v.began


def render_history_text(record_id: str, versions: list[Version], *, color: bool = False,
                        field: str | None = None, comments: list[dict] | None = None) -> str:
    st = _styler(color)
    v0 = versions[-1]
    what = f" (field {field})" if field else ""
    lines = [st(f"history of {record_id}{what}", bold=True) + f"   {v0.table} ({v0.base_id}/{v0.table_id})",
             f"{len(versions)} version(s)" + ("" if versions[-1].ended else ", the last one current")]
    sign = {"created": ("+", "green"), "changed": ("~", "yellow"), "re-created": ("+", "green")}
    for v in versions:
        s, fg = sign[v.began]
        lines.append("")
        lines.append(st(f"{s} v{v.n} {_began(v)}", fg=fg, bold=True) + f"  {_span(v)}")
        if v.values is not None:
            for name, val in v.values.items():
                lines.append(f"      {name}: {short_value(val)}")
        else:
            for fc in v.changes:
                for i, (style, ln) in enumerate(field_lines(fc)):
                    fgc = {"+": "green", "-": "red", "@": "cyan"}.get(style)
                    lines.append(("      " if i == 0 else "          ") + (st(ln, fg=fgc) if fgc else ln))
        end = _ending(v)
        if end:
            lines.append("  " + st(f"- {end}", fg="red"))
    if comments:
        lines += ["", st(f"comments ({len(comments)})", bold=True)]
        fg = {"+": "green", "~": "yellow", "-": "red"}
        lines += ["  " + st(ln, fg=fg[sign]) for sign, ln in timeline_lines(comments)]
    return "\n".join(lines)


def render_history_markdown(record_id: str, versions: list[Version], *, field: str | None = None,
                            comments: list[dict] | None = None) -> str:
    v0 = versions[-1]
    what = f" (field {field})" if field else ""
    out = [f"## History of `{record_id}`{what}", "", f"{v0.table} (`{v0.base_id}/{v0.table_id}`), "
           f"{len(versions)} version(s)", ""]
    for v in versions:
        out.append(f"- **v{v.n} {_began(v)}** {_span(v)}")
        if v.values is not None:
            out += [f"  - **{k}**: {short_value(val)}" for k, val in v.values.items()]
        for fc in v.changes if v.values is None else []:
            fl = field_lines(fc)
            if fc.text_diff is not None:
                out += [f"  - **{fc.label}**:", "", "    ```diff", *["    " + ln for _s, ln in fl[1:]], "    ```"]
            elif len(fl) == 1:
                name, _, rest = fl[0][1].partition(": ")
                out.append(f"  - **{name}**: {rest}")
            else:
                out.append(f"  - **{fc.label}**: " + ", ".join(ln for _s, ln in fl[1:]))
        end = _ending(v)
        if end:
            out.append(f"- **{end}**")
    if comments:
        out += ["", f"### Comments ({len(comments)})", ""]
        out += [f"- {_md(ln.strip())}" for _sign, ln in timeline_lines(comments)]
    return "\n".join(out) + "\n"


def render_history_json(record_id: str, versions: list[Version], comments: list[dict] | None = None) -> str:
    doc = {"record_id": record_id, "versions": [v.to_dict() for v in versions], "comments": comments or []}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def render_history(record_id: str, versions: list[Version], fmt: str, *, color: bool = False,
                   field: str | None = None, comments: list[dict] | None = None) -> str:
    if fmt == "json":
        return render_history_json(record_id, versions, comments)
    if fmt == "markdown":
        return render_history_markdown(record_id, versions, field=field, comments=comments)
    return render_history_text(record_id, versions, color=color, field=field, comments=comments)
