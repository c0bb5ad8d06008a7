"""Saving and loading workspaces.

Layout: ``<dir>/workspace.json`` (or any ``*.json`` path) with ``attachments/<att id>`` beside it.
The JSON holds each base's schema exactly as the meta API returns it and each table's records as the
list API returns them with field ids (attachment cells without their volatile ``url``/``thumbnails``);
extra keys: ``lastModifiedTime`` on a record when it differs from ``createdTime``, and per table
``comments`` (record id -> comments, oldest first). ``save(load(x))`` reproduces ``x`` byte for byte."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import orjson

from .state import Base, Record, Table, Workspace, attachment_cell
from .validate import check_workspace
from .values import refresh_computed

#: Rounds of recomputation at load: a formula over a lookup of a formula needs one per hop; the
#: emulator's own propagation follows 4 hops, so a consistent file settles in at most 5.
LOAD_ROUNDS = 6


def _paths(path: str) -> tuple[str, str]:
    path = os.fspath(path)
    if path.endswith(".json"):
        return path, os.path.join(os.path.dirname(os.path.abspath(path)), "attachments")
    return os.path.join(path, "workspace.json"), os.path.join(path, "attachments")


def to_dict(ws: Workspace) -> dict:
    bases = []
    for b in ws.bases:
        tables: dict[str, Any] = {}
        for t in b.tables:
            recs = []
            comments = {}
            for r in t.records.values():
                d: dict[str, Any] = {"id": r.id, "createdTime": r.created, "fields": r.cells}
                if r.modified != r.created:
                    d["lastModifiedTime"] = r.modified
                recs.append(d)
                if r.comments:
                    comments[r.id] = r.comments
            entry: dict[str, Any] = {"records": recs}
            if comments:
                entry["comments"] = comments
            tables[t.id] = entry
        bases.append({"id": b.id, "name": b.name, "permissionLevel": b.permission_level,
                      "createdTime": b.created_time, "schema": b.schema_json(), "tables": tables})
    return {
        "format": Workspace.FORMAT, "version": Workspace.VERSION, "seed": ws.seed, "idSeq": ws.id_seq,
        "now": ws.now, "workspaceId": ws.workspace_id, "users": ws.users,
        "attachments": ws.attachments, "bases": bases,
    }


def dump_json(ws: Workspace) -> bytes:
    return orjson.dumps(to_dict(ws), option=orjson.OPT_INDENT_2) + b"\n"


def save_workspace(ws: Workspace, path: str) -> str:
    """Write the workspace; returns the JSON file's path."""
    json_path, att_dir = _paths(path)
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    os.makedirs(att_dir, exist_ok=True)
    for att_id, info in ws.attachments.items():
        data = ws.blobs[info["sha256"]]
        target = os.path.join(att_dir, att_id)
        if os.path.exists(target) and os.path.getsize(target) == len(data):
            continue
        with open(target + ".tmp", "wb") as fh:
            fh.write(data)
        os.replace(target + ".tmp", target)
    tmp = json_path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(dump_json(ws))
    os.replace(tmp, json_path)
    return json_path


class WorkspaceFormatError(ValueError):
    pass


def _clean_attachment(ws: Workspace, cell: dict) -> dict:
    att_id = cell.get("id")
    info = ws.attachments.get(att_id)
    if info is None:
        raise WorkspaceFormatError(f"attachment {att_id} has no file in the workspace")
    if set(cell) - {"id", "filename", "size", "type", "width", "height"}:
        return attachment_cell(att_id, info)
    return cell


def _shared_user(ws: Workspace, cell: Any) -> Any:
    u = ws.users_by_id.get(cell.get("id")) if isinstance(cell, dict) else None
    return u if u is not None and u == cell else cell


def from_dict(doc: dict, att_dir: str | None = None) -> Workspace:
    if doc.get("format") != Workspace.FORMAT:
        raise WorkspaceFormatError("not a snapstore emulator workspace (missing \"format\")")
    if doc.get("version") != Workspace.VERSION:
        raise WorkspaceFormatError(f"unsupported workspace version {doc.get('version')!r}")
    ws = Workspace(seed=doc.get("seed", 0), workspace_id=doc.get("workspaceId"), users=doc.get("users") or [],
                   now=doc.get("now") or "2024-06-01T00:00:00.000Z", id_seq=doc.get("idSeq", 0))
    for att_id, info in (doc.get("attachments") or {}).items():
        data = None
        if att_dir is not None:
            p = os.path.join(att_dir, att_id)
            if os.path.exists(p):
                with open(p, "rb") as fh:
                    data = fh.read()
        if data is None:
            raise WorkspaceFormatError(f"missing attachment file {att_id}")
        sha = hashlib.sha256(data).hexdigest()
        if info.get("sha256") not in (None, sha):
            raise WorkspaceFormatError(f"attachment {att_id} does not match its sha256")
        if "sha256" not in info:
            info = dict(info, sha256=sha)
        ws.blobs.setdefault(sha, data)
        ws.attachments[att_id] = info
    for bd in doc.get("bases") or []:
        base = Base(bd["id"], bd["name"], bd.get("permissionLevel", "create"),
                    bd.get("createdTime", "2024-01-01T00:00:00.000Z"))
        tables_data = bd.get("tables") or {}
        for ts in bd["schema"]["tables"]:
            table = Table(ts)
            td = tables_data.get(ts["id"]) or {}
            comments = td.get("comments") or {}
            attach_fields = {f["id"] for f in ts["fields"] if f["type"] == "multipleAttachments"}
            user_fields = {f["id"] for f in ts["fields"] if f["type"] in ("singleCollaborator", "createdBy",
                                                                          "lastModifiedBy")}
            users_fields = {f["id"] for f in ts["fields"] if f["type"] == "multipleCollaborators"}
            for rd in td.get("records") or []:
                cells = rd.get("fields") or {}
                for fid in attach_fields & cells.keys():
                    cells[fid] = [_clean_attachment(ws, a) for a in cells[fid]]
                for fid in user_fields & cells.keys():  # share the user objects: much less memory
                    cells[fid] = _shared_user(ws, cells[fid])
                for fid in users_fields & cells.keys():
                    cells[fid] = [_shared_user(ws, u) for u in cells[fid]]
                rec = Record(rd["id"], rd["createdTime"], cells, rd.get("lastModifiedTime"),
                             comments.get(rd["id"]))
                table.records[rec.id] = rec
            base.tables.append(table)
        ws.bases.append(base)
    check_workspace(ws)  # refuse what Airtable would (validate.py)
    ws.recomputed_at_load = recompute(ws)
    return ws


def recompute(ws: Workspace) -> list[dict]:
    """Bring every computed cell (formula, lookup, rollup, count, created/modified time) in line
    with its definition, so a loaded workspace is consistent from its first read rather than from
    the first write that touches a record. Returns the cells that disagreed with their definition
    as loaded (``{"base", "table", "field", "record"}``), for the caller to say which."""
    fixed: list[dict] = []
    seen: set[tuple[str, str]] = set()
    for n in range(LOAD_ROUNDS):
        moved = False
        for base in ws.bases:
            for table in base.tables:
                for rec in table.records.values():
                    before = dict(rec.cells)
                    refresh_computed(ws, base, table, rec)
                    if rec.cells == before:
                        continue
                    moved = True
                    for fid in table.fields_by_id:
                        if before.get(fid) != rec.cells.get(fid) and (rec.id, fid) not in seen:
                            seen.add((rec.id, fid))
                            fixed.append({"base": base.id, "table": table.id, "field": fid, "record": rec.id})
        if not moved:
            break
        if n == LOAD_ROUNDS - 1:
            raise WorkspaceFormatError("computed cells do not settle (a cycle of formulas and lookups?)")
    return fixed


def load_workspace(path: str) -> Workspace:
    json_path, att_dir = _paths(path)
    with open(json_path, "rb") as fh:
        doc = orjson.loads(fh.read())
    return from_dict(doc, att_dir)
