"""Import of an exported folder keeps the exported snapshot's time (issue 18): `log` order,
`latest`, and `forget --keep-daily` treat a back-filled backup as old; `--time` overrides. A folder
with only flattened formats says exactly what is missing; NDJSON and YAML exports restore whole."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import fixtures_alltypes as F
import pytest
from click.testing import CliRunner

from snapstore import restore as R
from snapstore.ops.retention import Policy, forget
from snapstore.restore.values import _text_of
from snapstore.store import Store


def _export(store, snap, out, fmt="json"):
    from pathlib import Path

    from snapstore_exporters.export import export_snapshot

    return Path(export_snapshot(store, snap, out, formats=[fmt]).path)


@pytest.fixture
def old_export(tmp_path):
    store, snap = F.build(tmp_path / "a", hostile=False)
    return snap, _export(store, snap, tmp_path / "exp")


def test_import_keeps_the_exported_time_log_order_and_forget(old_export, tmp_path):
    old, folder = old_export
    store, newer = F.build(tmp_path / "b", hostile=False)  # taken after the exported one
    assert newer.time > old.time
    info = R.import_folder(folder, store)
    assert info.time == old.time
    assert [s.full_id for s in store.list_snapshots()] == [newer.full_id, info.full_id]
    assert store.resolve("latest").full_id == newer.full_id and store.resolve("latest~1").full_id == info.full_id
    assert info.parent is None  # nothing in this store is older
    # both from the same day: --keep-daily 1 keeps the newer, forgets the back-filled one
    res = forget(store, Policy(daily=1), dry_run=True)
    assert res.removed == [info.full_id]


def test_import_time_override_and_cli(old_export, tmp_path):
    from snapstore.commands.import_ import import_

    _old, folder = old_export
    store, newer = F.build(tmp_path / "b", hostile=False)
    info = R.import_folder(folder, store, time="2020-01-02T03:04:05Z")
    assert info.time == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert forget(store, Policy(daily=2), dry_run=True).removed == []  # two days, two kept
    with pytest.raises(R.RestoreError, match="not an ISO date"):
        R.import_folder(folder, store, time="yesterday-ish")
    res = CliRunner().invoke(import_, [str(folder), "--store", str(store.root), "--time", "2021-06-01"])
    assert res.exit_code == 0, res.output
    assert "of 2021-06-01 00:00:00 UTC" in res.output
    assert len(store.list_snapshots()) == 3 and store.list_snapshots()[-1].time.year == 2020


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_flattened_only_export_says_what_is_missing(tmp_path, fmt):
    store, snap = F.build(tmp_path / "a", hostile=False)
    folder = _export(store, snap, tmp_path / "exp", fmt)
    other = Store.open(tmp_path / "other", create=True)
    for attempt in (lambda: R.import_folder(folder, other), lambda: R.FolderSource(folder)):
        with pytest.raises(R.RestoreError, match=f"holds only {fmt} data.*only a JSON, NDJSON or YAML export "
                                                 "holds everything"):
            attempt()
    assert other.list_snapshots() == []


@pytest.mark.parametrize("fmt", ["ndjson", "yaml"])
def test_ndjson_and_yaml_exports_import_whole(tmp_path, fmt):
    store, snap = F.build(tmp_path / "a", hostile=False)
    folder = _export(store, snap, tmp_path / "exp", fmt)
    other = Store.open(tmp_path / "other", create=True)
    info = R.import_folder(folder, other)
    for t in (F.T_MAIN, F.T_DIST):
        a = store.record_hashes(snap, F.BASE, t).sort_by("record_id")
        b = other.record_hashes(info, F.BASE, t).sort_by("record_id")
        assert a.equals(b), t


def test_keep_computed_values_keeps_a_buttons_url():
    assert _text_of({"label": "Open", "url": "https://example.com/rec"}) == "Open <https://example.com/rec>"
    assert _text_of({"label": "Go", "url": None}) == "Go"


# ---- export → import → export gives the same folder, file for file (comments files included)

def _normalized(folder, snap) -> dict[str, object]:
    """Every file of an export, with what names the snapshot (its id; the store, note and command
    that made it; when it was exported) taken out: what must survive an import unchanged."""
    import json
    import sqlite3

    import pyarrow.parquet as pq

    def text(b: bytes) -> str:
        return b.decode("utf-8").replace(snap.full_id, "SNAP").replace(snap.id, "SNAP")

    out: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if not p.is_file() or rel == "logs/export.log":
            continue
        if rel == "metadata/manifest.json":  # file hashes: those of the files that name the snapshot differ
            out[rel] = sorted(e["path"] for e in json.loads(p.read_text())["entries"])
        elif rel == "metadata/snapshot.json":
            doc = json.loads(text(p.read_bytes()))
            for k in ("note", "command"):
                doc["snapshot"].pop(k)
            doc["store"].pop("store_id")
            doc["export"].pop("exported_at")
            out[rel] = doc
        elif p.suffix == ".parquet":
            t = pq.read_table(p)
            out[rel] = (t.replace_schema_metadata(None).to_pylist(), str(t.schema.remove_metadata()),
                        {k: text(v) for k, v in (t.schema.metadata or {}).items()})
        elif p.suffix == ".sqlite":
            con = sqlite3.connect(p)
            out[rel] = [text(line.encode()) for line in con.iterdump()]
            con.close()
        else:
            out[rel] = text(p.read_bytes())
    return out


@pytest.mark.parametrize("comments", [True, False], ids=["comments", "no-comments"])
def test_export_import_export_round_trips_file_for_file(tmp_path, comments):
    import emuexport

    from snapstore.cli import main

    def no_comments_in_second_table(ws):
        for rec in ws.bases[0].tables[1].records.values():
            rec.comments = None

    store, snap = emuexport.snapshot_store(tmp_path / "store", comments=comments, edit=no_comments_in_second_table)
    run = CliRunner()
    env = {"SNAPSTORE_CONFIG": None, "SNAPSTORE_STORE": None}
    r = run.invoke(main, ["export", snap.id, "--store", str(store.root), "--out", str(tmp_path / "a")], env=env)
    assert r.exit_code == 0, r.output
    (first,) = (tmp_path / "a").iterdir()
    r = run.invoke(main, ["import", str(first), "--store", str(tmp_path / "other")], env=env)
    assert r.exit_code == 0, r.output
    other = Store.open(tmp_path / "other")
    imported = other.resolve("latest")
    r = run.invoke(main, ["export", "latest", "--store", str(other.root), "--out", str(tmp_path / "b")], env=env)
    assert r.exit_code == 0, r.output
    (second,) = (tmp_path / "b").iterdir()
    a, b = _normalized(first, snap), _normalized(second, imported)
    assert sorted(a) == sorted(b)
    for rel in a:
        assert a[rel] == b[rel], rel
    comment_files = [rel for rel in a if ".comments." in rel]
    (sqlite,) = [rel for rel in a if rel.endswith(".sqlite")]
    schema_sql = "\n".join(line for line in a[sqlite] if line.startswith("CREATE"))
    if comments:  # captured (none in the second table): comments files in the 5 file formats for both tables
        assert len(comment_files) == 2 * 5 and len(re.findall(r'CREATE TABLE "\w+__comments"', schema_sql)) == 2 and 'VIEW "_comments"' in schema_sql
        assert any(a[rel] in ("[]", "[]\n", "") for rel in comment_files if rel.endswith((".json", ".ndjson")))
    else:  # not captured: no comments files, no comments tables
        assert not comment_files and '__comments"' not in schema_sql and 'VIEW "_comments"' not in schema_sql
