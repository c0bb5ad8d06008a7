"""Import of an exported folder keeps the exported snapshot's time (issue 18): `log` order,
`latest`, and `forget --keep-daily` treat a back-filled backup as old; `--time` overrides. A folder
with only flattened formats says exactly what is missing; NDJSON and YAML exports restore whole."""

from __future__ import annotations

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

    from exporters.export import export_snapshot

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
