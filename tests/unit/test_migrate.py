"""migrate copies a store into the current format with every snapshot, record, tag, note and time kept."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from retgen import build, contents

from snapstore.cli import main
from snapstore.ops.verify import verify
from snapstore.store import Store
from snapstore.store.migrate import migrate
from snapstore.store.store import FORMAT_VERSION


@pytest.mark.parametrize(("src", "dst"), [(1, None), (1, 3), (2, 3)])
def test_store_migrates_with_equal_records_and_times(tmp_path, src, dst):
    build(tmp_path / "old", n_snapshots=4, n_records=120, format_version=src)
    old = Store.open(tmp_path / "old")
    assert old.format_version == src
    old_snaps = list(reversed(old.list_snapshots()))
    # a plain destination: its records hash as the source's (an encrypted one keys them: test_crypt.py)
    if dst is None:  # the CLI: into the current format
        r = CliRunner().invoke(main, ["migrate", str(tmp_path / "old"), str(tmp_path / "new"), "--no-encryption"])
        assert r.exit_code == 0, r.output
        assert f"migrated {len(old_snaps)} snapshot(s)" in r.output
    else:
        migrate(old, Store.init(tmp_path / "new", format_version=dst))
    new = Store.open(tmp_path / "new")
    assert new.format_version == (dst or FORMAT_VERSION)
    new_snaps = list(reversed(new.list_snapshots()))
    assert len(new_snaps) == len(old_snaps)
    for a, b in zip(old_snaps, new_snaps, strict=True):
        assert b.time == a.time and b.tags == a.tags and b.note == a.note and b.status == a.status
        assert b.doc["started"] == a.doc["started"]
        assert [(t.table_id, t.records, t.new, t.changed, t.deleted) for x in b.bases for t in x.tables] == \
               [(t.table_id, t.records, t.new, t.changed, t.deleted) for x in a.bases for t in x.tables]
        assert contents(new, b) == contents(old, a)  # records, schema and attachment bytes
        for base in a.bases:
            for t in base.tables:
                assert new.record_hashes(b, base.base_id, t.table_id).equals(
                    old.record_hashes(a, base.base_id, t.table_id))
                assert new.comments(b, base.base_id, t.table_id) == old.comments(a, base.base_id, t.table_id)
    assert new_snaps[-1].parent == new_snaps[-2].full_id
    assert verify(new, read_data=True).ok
    # the source is only read, and a store that already holds snapshots is not a destination
    assert [s.full_id for s in Store.open(tmp_path / "old").list_snapshots()] == [s.full_id for s in reversed(old_snaps)]
    r = CliRunner().invoke(main, ["migrate", str(tmp_path / "old"), str(tmp_path / "new")])
    assert r.exit_code == 1 and "already holds a store" in r.output
