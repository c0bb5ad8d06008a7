"""Re-reading chosen records through the list API, so their bytes are a full listing's.

``POST …/listRecords`` with ``filterByFormula: OR(RECORD_ID()='rec…', …)``, ``returnFieldsByFieldId``
and the same record metadata as a listing, 100 ids a request: one page each. A record id is 17
characters, so 100 of them make a formula of about 3,300 characters, well under the 16,000 Airtable
allows in a URL (reference airtable-api.md §3.3; the POST body has no URL, but the bound keeps the
formula itself a reasonable size). A record the list does not return was deleted since the payload.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from pyairtable.api.params import options_to_json_and_params

from snapstore.source.errors import SourceError, translate

PER_REQUEST = 100
MAX_FORMULA = 15_000
_REC = re.compile(r"^rec[A-Za-z0-9]{14}$")


def formula_for(ids: list[str]) -> str:
    return "OR(" + ",".join(f"RECORD_ID()='{i}'" for i in ids) + ")"


def chunks(ids: Iterable[str], per: int = PER_REQUEST) -> Iterator[list[str]]:
    """Sorted ids, ``per`` at a time and each chunk's formula under MAX_FORMULA characters."""
    chunk: list[str] = []
    size = 4
    for i in sorted(ids):
        if not _REC.match(i):  # never put an unexpected string into a formula
            continue
        if chunk and (len(chunk) >= per or size + len(i) + 16 > MAX_FORMULA):
            yield chunk
            chunk, size = [], 4
        chunk.append(i)
        size += len(i) + 16
    if chunk:
        yield chunk


def reread(source, base_id: str, table_id: str, ids: Iterable[str], *, comment_counts: bool = False
           ) -> Iterator[list[dict]]:
    """Pages of the current records among ``ids`` (those that still exist)."""
    table = source.api.table(base_id, table_id)
    url = table.urls.records_post
    context = f"re-reading records of table {table_id} in base {base_id}"
    for chunk in chunks(ids):
        opts = {"formula": formula_for(chunk), "use_field_ids": True, "page_size": PER_REQUEST}
        if comment_counts:
            opts["count_comments"] = True
        body, params = options_to_json_and_params(opts)
        while True:  # one page for 100 ids; an offset only if the server pages smaller
            try:
                page = source.api.request("POST", url, params=params, json=body)
            except SourceError:
                raise
            except Exception as exc:
                raise translate(exc, context, source.api_url) from None
            yield (page or {}).get("records") or []
            offset = (page or {}).get("offset")
            if not offset:
                break
            body = {**body, "offset": offset}
