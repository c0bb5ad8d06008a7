"""A snapshot's comments: which records' comments to read, reading them, and giving up in bounded time.

Per table, after its records are listed (never between two pages): a record whose ``commentCount``
is unchanged keeps its stored comments, unless the table's sweep is due (snapstore.ops.comment_sweep),
when every record with comments is read again and each comment whose text changed is counted as an
edit the count-driven reading had missed.

Failures are bounded. A failing comments endpoint used to cost every record its full retries (about
70 s each: a nightly run projected to hours). Now, once a base's comments request has failed after
its retries, the base's next comments requests get one retry; ``MAX_CONSECUTIVE`` failures in a row
end the table's comments (its earlier comments are kept, the table is named under ``missing``, the
snapshot is partial, exit 3); after ``MAX_TABLES`` such tables the base's remaining tables read no
comments at all. Worst case per base: one full retry cycle plus a few seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from snapstore.feed.state import parse_time
from snapstore.ops import comment_sweep
from snapstore.source.errors import AuthError, Cancelled, NotFound, SourceError
from snapstore.store import StoreError

log = logging.getLogger("snapstore.ops.snapshot")

#: failures in a row (each after its retries) before a table's comments are given up
MAX_CONSECUTIVE = 3
#: tables given up before the rest of the base reads no comments
MAX_TABLES = 2
#: retries of a comments request once the base's comments endpoint has failed
FEWER_RETRIES = 1


@dataclass
class _BaseState:
    failed: bool = False  # a request of this base failed after its retries: fewer retries from now on
    tables_given_up: int = 0
    why: str | None = None


def edited(old: list[dict], new: list[dict]) -> int:
    """Comments present in both with a different text: edits a count could not see."""
    before = {c.get("id"): c.get("text") for c in old}
    return sum(1 for c in new if c.get("id") in before and before[c.get("id")] != c.get("text"))


class CommentReader:
    """One per snapshot run: its bases' failure state and its tables' comments records."""

    def __init__(self, run) -> None:
        self.run = run
        self._lock = threading.Lock()
        self._bases: dict[str, _BaseState] = {}
        self._last: dict[str, dict] | None = None
        self.tables: dict[str, dict] = {}

    def _last_records(self) -> dict[str, dict]:
        with self._lock:
            if self._last is None:
                try:
                    self._last = comment_sweep.last_records(self.run.snapshot_docs())
                except (StoreError, ValueError) as e:
                    log.warning("the last comment sweeps are unreadable (%s): sweeping", e)
                    self._last = {}
            return self._last

    def _sweep_due(self, k: str) -> tuple[bool, str | None]:
        opts = self.run.opts
        last = self._last_records().get(k, {}).get("last_sweep")
        if opts.comments == "full":
            return True, last
        return comment_sweep.due(parse_time(last), opts.comments_every, self.run.now()), last

    def _base(self, base_id: str) -> _BaseState:
        with self._lock:
            return self._bases.setdefault(base_id, _BaseState())

    def _fetch(self, base_id: str, table_id: str, rid: str, st: _BaseState) -> list[dict]:
        source = self.run.source
        fewer = getattr(source, "fewer_retries", None)
        ctx = fewer(FEWER_RETRIES) if st.failed and fewer is not None else contextlib.nullcontext()
        with ctx:
            return source.comments(base_id, table_id, rid)

    def read_table(self, bp, tp, res, counts: dict[str, int]) -> None:
        """Read (or carry over) the comments of one listed table and add them to the snapshot."""
        run = self.run
        k = comment_sweep.key(bp.base_id, tp.table_id)
        st = self._base(bp.base_id)
        try:
            prev = run.snap.previous_comments(bp.base_id, tp.table_id)
        except StoreError as e:
            log.warning("%s: previous comments unreadable (%s); fetching all", k, e)
            prev = {}
        sweep, last = self._sweep_due(k)
        out: dict[str, list[dict]] = {}
        fetch: list[str] = []
        for rid, c in counts.items():
            if c <= 0:
                continue
            old = prev.get(rid)
            if old is not None and len(old) == c and not sweep:
                out[rid] = old
                res.comments_carried += 1
            else:
                fetch.append(rid)
        stats = run.source.stats
        req0 = stats.count_for("comments", bp.base_id) if hasattr(stats, "count_for") else 0
        failed, in_a_row, edits = 0, 0, 0
        first_error = gave_up = None
        if st.why is not None:
            gave_up = st.why
        for i, rid in enumerate(fetch):
            if gave_up is not None:
                for r in fetch[i:]:  # keep the older comments rather than none
                    if r in prev:
                        out[r] = prev[r]
                break
            try:
                comments = self._fetch(bp.base_id, tp.table_id, rid, st)
            except (Cancelled, AuthError):
                raise
            except NotFound:
                continue  # record deleted since the listing
            except SourceError as e:
                failed += 1
                in_a_row += 1
                st.failed = True
                first_error = first_error or str(e)
                if rid in prev:
                    out[rid] = prev[rid]
                if in_a_row >= MAX_CONSECUTIVE:
                    gave_up = f"{in_a_row} comments requests in a row failed ({first_error})"
                    with self._lock:
                        st.tables_given_up += 1
                        if st.tables_given_up >= MAX_TABLES:
                            st.why = (f"the comments of {st.tables_given_up} tables of this base could not be "
                                      f"read ({first_error})")
                continue
            in_a_row = 0
            if rid in prev:
                edits += edited(prev[rid], comments)
            out[rid] = comments
            res.comments_fetched += 1
            self._attachments(bp, tp, res, rid, comments)
        requests = (stats.count_for("comments", bp.base_id) if hasattr(stats, "count_for") else 0) - req0
        try:
            run.snap.add_comments(bp.base_id, tp.table_id, out)
        except StoreError as e:
            run.error(bp.base_id, tp.table_id, f"comments not stored: {e}", drop_table=False)
            return
        if gave_up is not None:
            run.error(bp.base_id, tp.table_id, f"comments not read: {gave_up}; the earlier comments are kept",
                      drop_table=False)
        elif failed:
            run.error(bp.base_id, tp.table_id, f"comments of {failed} record(s) could not be read ({first_error})",
                      drop_table=False)
        complete = not failed and gave_up is None
        swept = complete and (sweep or res.comments_carried == 0)
        if swept and edits:
            log.warning("%s: the comment sweep found %d edited comment(s)", k, edits)
        with self._lock:
            self.tables[k] = comment_sweep.table_record(
                swept=swept, sweep_due=sweep, last_sweep=last, every=run.opts.comments_every, requests=requests,
                records_with_comments=sum(1 for c in counts.values() if c > 0),
                sweep_cost=comment_sweep.sweep_requests(counts.values()), edits=edits if swept else None,
                now=run.now())
        log.info("%s: comments fetched for %d record(s), carried over for %d%s", k, res.comments_fetched,
                 res.comments_carried, " (sweep)" if sweep else "")

    def _attachments(self, bp, tp, res, rid: str, comments: list[dict]) -> None:
        run = self.run
        if not run.opts.attachments:
            return
        from snapstore.ops.snapshot import AttRef, _scan_attachments

        refs: dict[str, Any] = {}
        for cm in comments:
            for a in _scan_attachments(cm.get("attachments")):
                refs.setdefault(a["id"], AttRef(a["id"], a.get("url"), a.get("size"), a.get("filename"),
                                                a.get("type"), bp.base_id, tp.table_id, rid, None, cm.get("id")))
        if refs:
            run.schedule_attachments(res, refs.values())

    def stats(self) -> dict:
        """``stats.comments`` of the snapshot (empty when no table read comments)."""
        with self._lock:
            return comment_sweep.summary(dict(sorted(self.tables.items()))) if self.tables else {}
