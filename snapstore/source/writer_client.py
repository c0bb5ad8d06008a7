"""Writing to Airtable: a thin raw-JSON client beside the read client (same throttled, retried Api)."""

from __future__ import annotations

import contextlib
import json
import mimetypes
from collections.abc import Callable
from typing import Any

from snapstore.source.errors import SourceError, translate


class AirtableWriter:
    """Thin raw-JSON writer on a pyairtable Api (normally ``AirtableSource.api``: throttled, retried)."""

    def __init__(self, api, base_id: str) -> None:
        self.api = api
        self.base_id = base_id
        self.writes = 0

    def _url(self, *parts: str):
        return self.api.build_url(*parts)

    def _call(self, what: str, fn: Callable, *a, **kw):
        try:
            return fn(*a, **kw)
        except SourceError as e:
            raise WriteFailed(f"{what}: {e}", e.status) from None
        except Exception as e:  # noqa: BLE001 - pyairtable/requests errors
            detail = ""
            resp = getattr(e, "response", None)
            if resp is not None:
                with contextlib.suppress(Exception):
                    detail = " " + json.dumps(resp.json().get("error"))
            err = translate(e, what)
            status = getattr(err, "status", None)
            raise WriteFailed(f"{what}: {err}{detail}", status, detail) from None

    def schema(self) -> dict:
        return self._call(f"schema of base {self.base_id}", self.api.get,
                          self._url("meta/bases", self.base_id, "tables"))

    def create_base(self, name: str, workspace_id: str, tables: list[dict]) -> dict:
        """``POST /v0/meta/bases``: a new base with its tables (each with at least one field, the
        first the primary); answers ``{"id", "tables"}``."""
        self.writes += 1
        return self._call(f"create base {name!r}", self.api.post, self._url("meta/bases"),
                          json={"name": name, "workspaceId": workspace_id, "tables": tables})

    def create_table(self, name: str, fields: list[dict], description: str | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "fields": fields}
        if description:
            body["description"] = description
        self.writes += 1
        return self._call(f"create table {name!r}", self.api.post,
                          self._url("meta/bases", self.base_id, "tables"), json=body)

    def create_field(self, table_id: str, fdef: dict) -> dict:
        self.writes += 1
        return self._call(f"create field {fdef['name']!r}", self.api.post,
                          self._url("meta/bases", self.base_id, "tables", table_id, "fields"), json=fdef)

    def rename_field(self, table_id: str, field_id: str, name: str, description: str | None = None) -> dict:
        """PATCH a field's name (and its description when given): all the update route allows
        besides some options (reference §6.5)."""
        body: dict[str, Any] = {"name": name}
        if description:
            body["description"] = description
        self.writes += 1
        return self._call(f"rename field {field_id}", self.api.patch,
                          self._url("meta/bases", self.base_id, "tables", table_id, "fields", field_id), json=body)

    def list_ids(self, table_id: str, fields: list[str] | None = None) -> list[dict]:
        out: list[dict] = []
        params: dict[str, Any] = {"returnFieldsByFieldId": 1, "pageSize": 100}
        if fields is not None:
            params["fields[]"] = fields
        url = self._url(self.base_id, table_id)
        offset = None
        while True:
            if offset:
                params["offset"] = offset
            page = self._call(f"list {table_id}", self.api.get, url, params=params)
            out.extend(page.get("records") or [])
            offset = page.get("offset")
            if not offset:
                return out

    def get_record(self, table_id: str, rec_id: str) -> dict:
        return self._call(f"get {rec_id}", self.api.get, self._url(self.base_id, table_id, rec_id),
                          params={"returnFieldsByFieldId": 1})

    def create(self, table_id: str, rows: list[dict]) -> list[dict]:
        self.writes += 1
        resp = self._call(f"create records in {table_id}", self.api.post, self._url(self.base_id, table_id),
                          json={"records": [{"fields": r} for r in rows], "typecast": True,
                                "returnFieldsByFieldId": True})
        return resp["records"]

    def update(self, table_id: str, rows: list[dict]) -> list[dict]:
        self.writes += 1
        resp = self._call(f"update records in {table_id}", self.api.patch, self._url(self.base_id, table_id),
                          json={"records": rows, "typecast": True, "returnFieldsByFieldId": True})
        return resp["records"]

    def delete(self, table_id: str, ids: list[str]) -> None:
        self.writes += 1
        self._call(f"delete records in {table_id}", self.api.delete, self._url(self.base_id, table_id),
                   params={"records[]": ids})

    def create_comment(self, table_id: str, rec_id: str, text: str, parent_id: str | None = None) -> dict:
        body: dict[str, Any] = {"text": text}
        if parent_id:
            body["parentCommentId"] = parent_id
        self.writes += 1
        return self._call(f"comment on {rec_id}", self.api.post,
                          self._url(self.base_id, table_id, rec_id, "comments"), json=body)

    def list_comments(self, table_id: str, rec_id: str) -> list[dict]:
        out: list[dict] = []
        params: dict[str, Any] = {}
        while True:
            page = self._call(f"comments of {rec_id}", self.api.get,
                              self._url(self.base_id, table_id, rec_id, "comments"), params=params)
            out.extend(page.get("comments") or [])
            if not page.get("offset"):
                return out
            params["offset"] = page["offset"]

    def upload(self, table_id: str, rec_id: str, field_id: str, filename: str, content: bytes,
               mime: str | None) -> dict:
        """``uploadAttachment`` (pyairtable's URL, on content.airtable.com); the raw JSON answer, not
        pyairtable's typed result (which insists every returned field is an attachment list)."""
        import base64

        self.writes += 1
        table = self.api.table(self.base_id, table_id)
        ctype = mime or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        # the name as it was (a "../" in it is only text to Airtable); uploadAttachment refuses an empty one
        body = {"contentType": ctype, "filename": filename or "file",
                "file": base64.encodebytes(content).decode("ascii")}
        url = table.urls.upload_attachment(rec_id, field_id)
        if "api.airtable.com" not in str(self.api.endpoint_url):
            # not Airtable (the emulator, a proxy): it serves uploads itself, not content.airtable.com
            url = self.api.build_url(self.base_id, rec_id, field_id, "uploadAttachment")
        return self._call(f"upload {filename!r} to {rec_id}", self.api.post, url, json=body)


class WriteFailed(SourceError):
    """A write was refused or failed; ``status`` is the HTTP status, ``detail`` Airtable's error body."""

    def __init__(self, msg: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(msg)
        self.status = status
        self.detail = detail
