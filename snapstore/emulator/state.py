"""The workspace model: users, bases -> tables (schema as the meta API returns it) -> records
(cells keyed by field id, values in the list API's JSON format, empty values never stored) ->
comments, plus the attachment registry (att id -> file metadata, sha256 -> bytes).

Everything here is plain data and small helpers; record writes with their rules live in
``values.py`` / ``ops.py``, persistence in ``workspace_io.py``."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from . import files
from .formula import format_datetime
from .ids import derived_id

PERMISSION_LEVELS = ("none", "read", "comment", "edit", "create")


def iso_from_epoch(t: float) -> str:
    import datetime as dt

    return format_datetime(dt.datetime.fromtimestamp(t, dt.UTC))


class Record:
    """One record. ``cells`` maps field id -> stored value (list-API JSON format; attachments without
    their volatile ``url``/``thumbnails``). ``comments`` is None or a list, oldest first."""

    __slots__ = ("id", "created", "cells", "modified", "comments")

    def __init__(self, rec_id: str, created: str, cells: dict | None = None, modified: str | None = None,
                 comments: list | None = None) -> None:
        self.id = rec_id
        self.created = created
        self.cells = cells if cells is not None else {}
        self.modified = modified or created
        self.comments = comments

    @property
    def comment_count(self) -> int:
        return len(self.comments) if self.comments else 0


class Table:
    def __init__(self, schema: dict) -> None:
        self.schema = schema
        self.records: dict[str, Record] = {}
        self._auto: int | None = None
        self.reindex()

    # -- schema access
    @property
    def id(self) -> str:
        return self.schema["id"]

    @property
    def name(self) -> str:
        return self.schema["name"]

    @property
    def fields(self) -> list[dict]:
        return self.schema["fields"]

    @property
    def primary_field_id(self) -> str:
        return self.schema["primaryFieldId"]

    def reindex(self) -> None:
        self.fields_by_id = {f["id"]: f for f in self.schema["fields"]}
        self.fields_by_name = {f["name"]: f for f in self.schema["fields"]}

    def field(self, id_or_name: str) -> dict | None:
        """A field by id or exact name (ids win)."""
        return self.fields_by_id.get(id_or_name) or self.fields_by_name.get(id_or_name)

    def view(self, id_or_name: str) -> dict | None:
        for v in self.schema["views"]:
            if v["id"] == id_or_name or v["name"] == id_or_name:
                return v
        return None

    def next_auto_number(self) -> int:
        """The next autoNumber value (never reused, like Airtable's)."""
        if self._auto is None:
            n = 0
            auto = [f["id"] for f in self.fields if f["type"] == "autoNumber"]
            for rec in self.records.values():
                v = rec.cells.get(auto[0]) if auto else None
                if isinstance(v, int) and v > n:
                    n = v
            self._auto = max(n, len(self.records))
        self._auto += 1
        return self._auto


class Base:
    def __init__(self, base_id: str, name: str, permission_level: str = "create",
                 created_time: str = "2024-01-01T00:00:00.000Z") -> None:
        self.id = base_id
        self.name = name
        self.permission_level = permission_level
        self.created_time = created_time
        self.tables: list[Table] = []

    def table(self, id_or_name: str) -> Table | None:
        for t in self.tables:
            if t.id == id_or_name:
                return t
        for t in self.tables:
            if t.name == id_or_name:
                return t
        # Airtable matches a table name in a URL without regard to case (``/v0/{base}/everything``
        # reaches ``EVERYTHING``); names are unique case-insensitively, so this finds at most one
        folded = id_or_name.casefold()
        for t in self.tables:
            if t.name.casefold() == folded:
                return t
        return None

    def table_by_id(self, table_id: str) -> Table | None:
        for t in self.tables:
            if t.id == table_id:
                return t
        return None

    def find_record(self, rec_id: str) -> tuple[Table, Record] | None:
        for t in self.tables:
            r = t.records.get(rec_id)
            if r is not None:
                return t, r
        return None

    def schema_json(self, include_visible_field_ids: bool = True) -> dict:
        tables = []
        for t in self.tables:
            if include_visible_field_ids:
                tables.append(t.schema)
            else:
                s = dict(t.schema)
                s["views"] = [{k: v for k, v in view.items() if k != "visibleFieldIds"} for view in s["views"]]
                tables.append(s)
        return {"tables": tables}


class Workspace:
    """All the state the emulator serves. Build one with ``generate_workspace`` or ``Workspace.load``."""

    FORMAT = "snapstore-emulator-workspace"
    VERSION = 1

    def __init__(self, seed: int = 0, workspace_id: str | None = None, users: list[dict] | None = None,
                 now: str = "2024-06-01T00:00:00.000Z", id_seq: int = 0) -> None:
        self.seed = seed
        self.workspace_id = workspace_id or derived_id("wsp", seed, "workspace")
        self.users: list[dict] = users or []
        self.now = now
        self.id_seq = id_seq
        self.bases: list[Base] = []
        self.attachments: dict[str, dict] = {}  # att id -> {"filename","type","size","width"?,"height"?,"sha256"}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes
        self.journal: Any = None  # a journal.Journal while an action runs on a base with webhooks
        #: whether a record whose link cell changes because of a write elsewhere (the other side of a
        #: two-sided link, a linked record deleted) gets a new last-modified time and user. Airtable
        #: does not document it; the emulator's switch (``Emulator(modified_by_inverse=...)``).
        self.modified_by_inverse = True
        self.recomputed_at_load: list[dict] = []  # computed cells a loaded file had wrong (workspace_io)
        # {"url": ...} attachments are downloaded (urlfetch.py): whether, how much, how long; and what failed
        self.fetch_urls = True
        self.url_max_bytes = 64 * 1024 * 1024
        self.url_timeout = 10.0
        self.url_failures: list[dict] = []
        self._reindex_users()

    # -- ids, users, time
    def new_id(self, prefix: str) -> str:
        """A fresh id, deterministic from the workspace seed and how many ids it has handed out."""
        self.id_seq += 1
        return derived_id(prefix, self.seed, "rt", self.id_seq)

    def _reindex_users(self) -> None:
        self.users_by_id = {u["id"]: u for u in self.users}
        self.users_by_email = {u["email"].lower(): u for u in self.users if u.get("email")}

    def add_user(self, user: dict) -> None:
        self.users.append(user)
        self._reindex_users()

    @property
    def default_user(self) -> dict:
        return self.users[0] if self.users else {"id": derived_id("usr", self.seed, "owner"),
                                                 "email": "owner@example.com", "name": "Owner"}

    def touch(self, iso: str) -> None:
        if iso > self.now:
            self.now = iso

    # -- bases
    def base(self, base_id: str) -> Base | None:
        for b in self.bases:
            if b.id == base_id:
                return b
        return None

    # -- attachments
    def add_attachment(self, data: bytes, filename: str, content_type: str | None = None,
                       att_id: str | None = None) -> dict:
        """Register a file; returns the cell form of the attachment (no url)."""
        sha = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(sha, data)
        att_id = att_id or self.new_id("att")
        info: dict[str, Any] = {"filename": filename, "type": content_type or files.guess_type(filename),
                                "size": len(data)}
        dims = files.image_size(data) if info["type"].startswith("image/") else None
        if dims:
            info["width"], info["height"] = dims
        info["sha256"] = sha
        self.attachments[att_id] = info
        return attachment_cell(att_id, info)

    def attachment_bytes(self, att_id: str) -> bytes | None:
        info = self.attachments.get(att_id)
        return None if info is None else self.blobs.get(info["sha256"])

    # -- persistence (see workspace_io)
    def save(self, path: str) -> str:
        from .workspace_io import save_workspace

        return save_workspace(self, path)

    @classmethod
    def load(cls, path: str) -> Workspace:
        from .workspace_io import load_workspace

        return load_workspace(path)

    def to_json_bytes(self) -> bytes:
        from .workspace_io import dump_json

        return dump_json(self)

    # -- stats
    def record_count(self) -> int:
        return sum(len(t.records) for b in self.bases for t in b.tables)

    def __repr__(self) -> str:
        return (f"<Workspace seed={self.seed} bases={len(self.bases)} "
                f"tables={sum(len(b.tables) for b in self.bases)} records={self.record_count()}>")


def attachment_cell(att_id: str, info: dict) -> dict:
    cell = {"id": att_id, "filename": info["filename"], "size": info["size"], "type": info["type"]}
    if "width" in info:
        cell["width"] = info["width"]
        cell["height"] = info["height"]
    return cell


def now_iso() -> str:
    return iso_from_epoch(time.time())
