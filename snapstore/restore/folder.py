"""Reading an exported folder: its manifest, its layout (ours or another tool's), its records."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapstore.canonical import canonical_record
from snapstore.fieldtypes import is_attachment
from snapstore.restore.errors import RestoreError, TamperedExport


def _manifest_entries(doc: Any) -> dict[str, dict]:
    """path -> {sha256, size} from the manifest, whichever of the usual shapes it has."""
    files = doc
    if isinstance(doc, dict):
        files = next((doc[k] for k in ("entries", "files") if isinstance(doc.get(k), (list, dict))), doc)
    out: dict[str, dict] = {}
    if isinstance(files, dict):
        for path, e in files.items():
            if isinstance(e, dict):
                out[path] = e
            elif isinstance(e, str):
                out[path] = {"sha256": e}
    elif isinstance(files, list):
        for e in files:
            if isinstance(e, dict) and (e.get("path") or e.get("name")):
                out[e.get("path") or e.get("name")] = e
    return out


def verify_folder(root: Path) -> int:
    """Check every file of an exported folder against ``metadata/manifest.json`` (sha256 and size)
    and refuse files the manifest does not list under data/, attachments/ and metadata/.
    Raises :class:`TamperedExport`; returns the number of files checked."""
    mpath = root / "metadata" / "manifest.json"
    if not mpath.exists():
        raise TamperedExport(f"{root.name}: no metadata/manifest.json; cannot verify the folder "
                             "(use --no-verify to trust it as is)")
    try:
        entries = _manifest_entries(json.loads(mpath.read_text()))
    except ValueError as e:
        raise TamperedExport(f"{root.name}: metadata/manifest.json is not valid JSON ({e})") from e
    if not entries:
        raise TamperedExport(f"{root.name}: metadata/manifest.json lists no files")
    problems: list[str] = []
    for rel, e in sorted(entries.items()):
        p = (root / rel).resolve()
        if root not in p.parents:
            problems.append(f"{rel}: outside the folder")
            continue
        if not p.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = e.get("size", e.get("bytes"))
        if size is not None and p.stat().st_size != int(size):
            problems.append(f"{rel}: size {p.stat().st_size}, manifest says {size}")
            continue
        want = e.get("sha256") or e.get("hash")
        if want:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            if h.hexdigest() != str(want).removeprefix("sha256:"):
                problems.append(f"{rel}: content changed (sha256 mismatch)")
    listed = {Path(r).as_posix() for r in entries}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in listed and rel != "metadata/manifest.json":
            problems.append(f"{rel}: not in the manifest")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise TamperedExport(f"{root.name} does not match its manifest, refusing to use it: "
                             + "; ".join(problems[:3]) + more)
    return len(entries)


@dataclass
class _Layout:
    schemas: dict[str, dict] = field(default_factory=dict)  # base id -> raw schema
    base_names: dict[str, str] = field(default_factory=dict)
    data_files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (base, table) -> json file
    att_files: dict[str, str] = field(default_factory=dict)  # att id -> path relative to the folder
    att_meta: dict[str, dict] = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # table id -> column -> field id
    comment_files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (base, table) -> comments file


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise RestoreError(f"{path}: not valid JSON ({e})") from e


def _load_json_records(path: Path) -> list[dict]:
    """A table's records from its JSON, NDJSON or YAML file (each holds the records whole)."""
    if path.name.endswith(".ndjson"):
        try:
            doc = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except ValueError as e:
            raise RestoreError(f"{path}: not valid NDJSON ({e})") from e
    elif path.name.endswith(".yaml"):
        import yaml

        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        except yaml.YAMLError as e:
            raise RestoreError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    else:
        doc = _load_json(path)
    if isinstance(doc, dict):
        doc = doc.get("records", [])
    return [r for r in doc if isinstance(r, dict) and "id" in r]


def _schema_docs(meta: Path) -> Iterator[tuple[Path, dict]]:
    for p in sorted(meta.rglob("*.json")):
        if p.name == "manifest.json":
            continue
        try:
            doc = json.loads(p.read_bytes())
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield p, doc


def _read_layout(root: Path) -> _Layout:
    snap_doc = root / "metadata" / "snapshot.json"
    if snap_doc.is_file():
        doc = _load_json(snap_doc)
        if isinstance(doc, dict) and isinstance(doc.get("bases"), list) and \
                all(isinstance(b, dict) and b.get("schema_file") for b in doc["bases"]):
            return _read_snapstore_layout(root, doc)
    return _read_generic_layout(root)


def _read_snapstore_layout(root: Path, doc: dict) -> _Layout:
    """Our exporter's folder: metadata/snapshot.json names each base's schema file and each table's
    file stem and column names (field id -> column)."""
    lay = _Layout(snapshot=doc)
    for b in doc["bases"]:
        bid = b["base_id"]
        lay.schemas[bid] = _load_json(_inside(root, b["schema_file"]))
        lay.base_names[bid] = b.get("name") or bid
        for t in b.get("tables", []):
            p = next((q for fmt in RECORD_FORMATS
                      if (q := _inside(root, f"data/{fmt}/{b['folder']}/{t['file_stem']}.{fmt}")).is_file()), None)
            if p is not None:
                lay.data_files[(bid, t["table_id"])] = p
                lay.columns[t["table_id"]] = {col: fid for fid, col in (t.get("columns") or {}).items()}
            c = _comments_file(root, b["folder"], t["file_stem"])
            if c is not None:
                lay.comment_files[(bid, t["table_id"])] = c
    return lay


#: The export formats that hold every record whole (ids, createdTime, every cell as the API gives it),
#: in the order they are looked for. CSV, Parquet and SQLite flatten cells and cannot be restored.
RECORD_FORMATS = ("json", "ndjson", "yaml")


def missing_records_reason(root: Path) -> str:
    """Why a folder has no restorable records: which formats it holds, and which would do."""
    data = root / "data"
    have = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
    flat = [f for f in have if f not in RECORD_FORMATS]
    if flat:
        return (f"{root.name} holds only {', '.join(flat)} data, which flattens records (links, attachments, "
                "collaborators and ids do not come back whole); only a JSON, NDJSON or YAML export holds "
                "everything: export the snapshot again with --format json")
    return f"{root.name}: no table data under data/json, data/ndjson or data/yaml"


#: Comments files an export writes per table, in the order they are looked for (all hold the same).
COMMENT_FILES = (("json", ".comments.json"), ("ndjson", ".comments.ndjson"), ("yaml", ".comments.yaml"))


def _comments_file(root: Path, folder: str, stem: str) -> Path | None:
    for fmt, suffix in COMMENT_FILES:
        p = _inside(root, f"data/{fmt}/{folder}/{stem}{suffix}")
        if p.is_file():
            return p
    return None


def read_comments(path: Path) -> dict[str, list[dict]]:
    """A table's comments file (``[{"record_id", "comments": [...]}, ...]``; NDJSON: one such object a
    line; YAML: the same list) as record id -> comments, in the file's (the record's) order."""
    try:
        if path.name.endswith(".ndjson"):
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif path.name.endswith(".yaml"):
            import yaml

            rows = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        else:
            rows = json.loads(path.read_bytes())
    except (ValueError, ImportError) as e:
        raise RestoreError(f"{path}: unreadable comments file ({e})") from e
    if isinstance(rows, dict):
        rows = rows.get("records") or rows.get("comments") or []
    out: dict[str, list[dict]] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and isinstance(row.get("record_id"), str) and isinstance(row.get("comments"), list):
            cs = [c for c in row["comments"] if isinstance(c, dict) and c.get("text") is not None]
            if cs:
                out[row["record_id"]] = cs
    return out


def _inside(root: Path, rel: str) -> Path:
    p = (root / rel).resolve()
    if root != p and root not in p.parents:
        raise TamperedExport(f"{rel}: points outside the folder")
    return p


def _read_generic_layout(root: Path) -> _Layout:
    """Other tools' folders with data/json: schema JSON anywhere under metadata/, one JSON file of
    records per table named by table id or table name."""
    lay = _Layout()
    meta = root / "metadata"
    table_index: dict[str, str] = {}  # table id -> base id
    table_names: dict[tuple[str, str], str] = {}  # (base, table name) -> table id
    if meta.is_dir():
        for p, doc in _schema_docs(meta):
            # a raw meta-API schema: {"tables": [...]}, perhaps wrapped with the base id and name
            inner = doc.get("schema") if isinstance(doc.get("schema"), dict) else doc
            if isinstance(inner.get("tables"), list) and all(isinstance(t, dict) and "fields" in t
                                                            for t in inner["tables"]):
                base_id = doc.get("base_id") or doc.get("baseId") or doc.get("id") or _base_id_from_name(p)
                if not base_id:
                    continue
                lay.schemas[base_id] = {"tables": inner["tables"]}
                lay.base_names[base_id] = doc.get("base_name") or doc.get("name") or base_id
            elif isinstance(doc.get("bases"), list) and "id" in doc or "snapshot" in p.stem:
                lay.snapshot = doc
            for b in doc.get("bases", []) if isinstance(doc.get("bases"), list) else []:
                if isinstance(b, dict) and (b.get("base_id") or b.get("id")) and b.get("name"):
                    lay.base_names.setdefault(b.get("base_id") or b.get("id"), b["name"])
    for base_id, schema in lay.schemas.items():
        for t in schema["tables"]:
            table_index[t["id"]] = base_id
            table_names[(base_id, t["name"])] = t["id"]
    data = root / "data" / "json"
    if not data.is_dir():
        raise RestoreError(missing_records_reason(root))
    if not lay.schemas:
        raise RestoreError(f"{root.name}: no base schema under metadata/; cannot map field names to fields")
    for p in sorted(data.rglob("*.json")):
        if p.name.endswith(".comments.json"):
            continue
        doc = _load_json(p)
        tid = bid = None
        if isinstance(doc, dict):
            tid = doc.get("table_id") or doc.get("tableId")
            bid = doc.get("base_id") or doc.get("baseId")
        if tid is None:
            m = re.search(r"(tbl[A-Za-z0-9]{14})", p.name)
            tid = m.group(1) if m else None
        if tid is None:  # by table name: "<table name>.json", perhaps under a base folder
            for (b, name), t in table_names.items():
                if p.stem == name or p.stem == _safe(name):
                    bid, tid = b, t
                    break
        if tid is None or tid not in table_index:
            continue
        lay.data_files[(bid or table_index[tid], tid)] = p
        c = p.with_name(p.stem + ".comments.json")
        if c.is_file():
            lay.comment_files[(bid or table_index[tid], tid)] = c
    return lay


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip()


def _base_id_from_name(p: Path) -> str | None:
    for part in (p.stem, p.parent.name):
        m = re.search(r"(app[A-Za-z0-9]{14})", part)
        if m:
            return m.group(1)
    return None


#: Keys an exporter adds to attachment objects that the API does not return.
_EXPORT_ATT_KEYS = ("path", "local_path", "file", "localPath")


def _record_from_export(rec: dict, table: dict, src) -> dict:
    """An exported record (fields by name) back in the store's canonical form (fields by id)."""
    by_name = {f["name"]: f for f in table["fields"]}
    by_id = {f["id"]: f for f in table["fields"]}
    cols = src.layout.columns.get(table["id"], {})
    fields: dict[str, Any] = {}
    for key, value in (rec.get("fields") or {}).items():
        # a record's keys are the real field names; the export's column names (made safe of control
        # characters, deduplicated) only where no field has that name (``Na_me`` beside ``Na\0me``)
        f = by_name.get(key)
        fid = f["id"] if f is not None else cols.get(key)
        if fid is None:
            f = by_id.get(key)
            fid = f["id"] if f is not None else (key if re.fullmatch(r"fld[A-Za-z0-9]{14}", key) else None)
        if fid is None:
            continue
        if isinstance(value, list) and any(is_attachment(a) for a in value):
            clean = []
            for a in value:
                if is_attachment(a):
                    a = dict(a)
                    path = None
                    for k in _EXPORT_ATT_KEYS:
                        if k in a:
                            path = a.pop(k)
                    src._note_att(a, path if isinstance(path, str) else None)
                    src.layout.att_meta.setdefault(a["id"], a)
                clean.append(a)
            value = clean
        fields[fid] = value
    return canonical_record({"id": rec["id"], "createdTime": rec.get("createdTime"), "fields": fields})
