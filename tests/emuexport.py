"""Helpers of the export tests: stores snapshotted from the emulator (a generated workspace, edited
first by the caller if needed, read through the real client, with or without comments), and one reader
of the record-shaped formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from snapstore.emulator import Emulator, Workspace, generate_workspace
from snapstore.ops.snapshot import SnapshotOptions, plan_snapshot, take_snapshot
from snapstore.source import AirtableSource
from snapstore.store import Store

#: Small, with comments on about a third of the records (many with two or more: order matters).
WS = dict(seed=1, bases=1, tables_per_base=2, records_per_table=40, attachment_share=0, comment_share=0.35)


def snapshot_store(path: Path, *, comments: bool = True, edit: Callable[[Workspace], None] | None = None,
                   **ws) -> tuple[Store, object]:
    """A new store at ``path`` holding one snapshot of the workspace (rate limits off)."""
    workspace = generate_workspace(**{**WS, **ws})
    if edit is not None:
        edit(workspace)
    with Emulator(workspace, rate_limits=False) as emu:
        store = Store.init(path)
        src = AirtableSource(emu.token, emu.url, rate_base=1000, rate_token=1000)
        take_snapshot(store, src, plan_snapshot(src), SnapshotOptions(comments=comments))
    return store, store.resolve("latest")


def read_items(path: Path) -> list:
    """A JSON, NDJSON or YAML export file (records or comments) read with its format's own reader."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
