"""prune removes exactly what no kept snapshot uses, and survives being killed anywhere."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TEST_PASSWORD
from retgen import BIG, contents, history_store

from snapstore.commands.forget import forget as forget_cmd
from snapstore.commands.prune import prune_cmd
from snapstore.ops.prune import CRASH_ENV, prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import verify
from snapstore.store import Store

ROOT = Path(__file__).resolve().parents[2]


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for d in ("packs", "objects", "snapshots", "index", "tags") for p in (root / d).rglob("*")
               if p.is_file())


def pack_names(root: Path) -> set[str]:
    return {p.name for p in (root / "packs").rglob("*") if p.is_file()}


def object_sizes(root: Path) -> list[int]:
    return sorted(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())


def kept_contents(store):
    return {s.full_id: contents(store, s) for s in store.list_snapshots()}


@pytest.mark.parametrize("fmt", [2, 3])
def test_prune_after_forget_keeps_every_kept_snapshot_identical_and_frees_the_rest(tmp_path_factory, tmp_path, fmt):
    store, snaps = history_store(tmp_path_factory, tmp_path, format_version=fmt)
    forget(store, Policy(last=3))
    before = kept_contents(store)
    size_before = disk_bytes(store.root)
    assert sum(1 for s in object_sizes(store.root) if s >= BIG) == 2
    dry = prune(store, dry_run=True, max_unused="0%")
    # format 3: the kept snapshots' manifest chain starts at a full manifest that names the first
    # snapshot's frames, so those stay whole (dead records too) until the chain is rebased
    # (test_format3); the large attachment only forgotten snapshots named goes all the same
    assert disk_bytes(store.root) == size_before and (dry.bytes_freed > 0 if fmt == 2 else dry.objects_dead)
    seen: list[tuple[int, int]] = []  # the CLI's live line: packs repacked of those to repack
    res = prune(store, max_unused="0%", progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, len(res.packs_repack)) for i in range(len(res.packs_repack))]
    assert kept_contents(store) == before
    assert res.bytes_after == disk_bytes(store.root) < size_before
    assert res.bytes_freed == size_before - res.bytes_after
    # the large attachment only forgotten snapshots named is gone, the one kept snapshots name is not
    assert sum(1 for s in object_sizes(store.root) if s >= BIG) == 1
    assert res.attachments_dead > 0 and res.blobs_dead > 0 and (res.packs_repack or fmt == 3)
    # with 0% tolerated, what remains is live: a second prune finds nothing to do
    again = prune(store, max_unused="0%")
    assert not (again.packs_dead or again.packs_repack or again.packs_orphan or again.objects_dead)
    assert again.bytes_unused_before == 0
    rep = verify(store, read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()
    store.rebuild_catalog()
    assert kept_contents(store) == before
    assert verify(store, read_data=True).ok


def test_default_prune_tolerates_five_percent_and_cli(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    r = CliRunner().invoke(forget_cmd, ["--store", str(store.root), "--keep-last", "4", "--prune"])
    assert r.exit_code == 0, r.output
    assert "forgot 4 snapshots" in r.output and "prune:" in r.output
    res = prune(store)
    assert res.bytes_unused_before <= 0.05 / 0.95 * res.bytes_used + 1
    r = CliRunner().invoke(prune_cmd, ["--store", str(store.root), "--dry-run", "--json"])
    assert r.exit_code == 0 and '"dry_run": true' in r.output


CHILD = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from snapstore.store import Store
    from snapstore.ops.prune import prune
    s = Store.open(sys.argv[1], password=os.environ.get("SNAPSTORE_PASSWORD"))  # (a plain store ignores it)
    s.backend.fsync = False
    prune(s, max_unused="0%")
""")


@pytest.mark.parametrize("step, password", [(s, None) for s in ("repacked", "indexed", "catalog", "indexes-dropped",
                                                                "deleting")] + [("repacked", TEST_PASSWORD),
                                                                                ("deleting", TEST_PASSWORD)])
def test_prune_killed_at_each_step_then_rerun(tmp_path_factory, tmp_path, step, password):
    store, snaps = history_store(tmp_path_factory, tmp_path, password)
    forget(store, Policy(last=3))
    before = kept_contents(store)
    size_before = disk_bytes(store.root)
    env = dict(os.environ, **{CRASH_ENV: step})
    p = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), str(store.root)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert (store.root / "locks" / "writer.json").exists()  # died holding the lock
    # killed: still readable, every kept snapshot intact, nothing damaged
    store = Store.open(store.root, password=password)
    assert kept_contents(store) == before
    rep = verify(store)
    assert rep.ok, rep.to_dict()
    # a catalog rebuilt from the objects at this point reads the same
    copy = tmp_path / "copy"
    shutil.copytree(store.root, copy)
    (copy / "catalog.duckdb").unlink(missing_ok=True)  # (an encrypted copy has its catalog on the machine, rebuilt for its path)
    c = Store.open(copy, password=password)
    assert kept_contents(c) == before
    assert verify(c).ok
    # a second prune (breaking the dead process's lock) finishes the job
    store.backend.fsync = False
    prune(store, max_unused="0%")
    assert kept_contents(store) == before
    rep = verify(store, read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()
    assert disk_bytes(store.root) < size_before
    final = prune(store, max_unused="0%")
    assert not (final.packs_dead or final.packs_repack or final.packs_orphan or final.objects_dead)
    assert len(list(store.backend.list("index"))) == 1
    store.rebuild_catalog()
    assert kept_contents(store) == before


def test_prune_refuses_when_live_data_is_missing(tmp_path_factory, tmp_path):
    store, snaps = history_store(tmp_path_factory, tmp_path)
    with store.catalog.read() as con:
        name = con.execute(
            "SELECT p.name FROM pack p JOIN blob b USING (pack_seq) WHERE b.kind = 'R' LIMIT 1").fetchone()[0]
    (store.root / "packs" / name[:2] / name).unlink()
    before = pack_names(store.root)
    with pytest.raises(Exception, match="missing"):
        prune(store)
    assert pack_names(store.root) == before
