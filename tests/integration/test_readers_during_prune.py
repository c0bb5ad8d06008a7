"""Readers during prune: a reader registers in the store, and prune deletes nothing while one
is registered, so a reader that located its blobs before prune rewrote the catalog still reads
every one of them; a reader that comes while prune deletes waits for it.

The processes are real and the interleaving is forced: each side says where it is (a line on
its output, a file) and waits for the other's word, so no test depends on timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner
from storegen import BASE, TABLE, churn, make_records, snapshot

from snapstore.cli import main
from snapstore.ops.prune import prune
from snapstore.ops.retention import Policy, forget
from snapstore.ops.verify import verify
from snapstore.store import Store, readers

ROOT = Path(__file__).resolve().parents[2]


def _store(root: Path) -> Store:
    st = Store.init(root, pack_size=32 * 1024, format_version=2)  # (format 2: no frame pinned by a manifest chain)
    recs = make_records(400)
    for i in range(4):
        recs = churn(recs, 0.5, seed=i)
        snapshot(st, recs)
    forget(st, Policy(last=2))
    return st


def _files(root: Path, sub: str = "") -> set[str]:
    """Names of the data files (packs and objects, or ``sub`` only)."""
    return {p.name for d in ([sub] if sub else ["packs", "objects"]) for p in (root / d).rglob("*") if p.is_file()}


#: A reader that registers, locates every record of every snapshot through the catalog, says
#: "located", waits for the word, then reads them all and prints how many it read.
READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from snapstore.store import Store, readers
    from snapstore.store.reader import BlobReader
    store = Store.open(sys.argv[1])
    go = Path(sys.argv[2])
    with readers.reading(store.backend, "export"):
        chunks = [c for s in store.list_snapshots() for c in store.record_chunks(s, {base!r}, {table!r})]
        print("located", flush=True)
        deadline = time.monotonic() + 120
        while not go.exists():
            assert time.monotonic() < deadline, "never told to read"
            time.sleep(0.02)
        reader = BlobReader(store)
        print(sum(len(list(reader.read_chunk(c))) for c in chunks), flush=True)
""")

PRUNER = textwrap.dedent("""
    import logging, sys
    sys.path.insert(0, {root!r})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from snapstore.store import Store
    from snapstore.ops.prune import prune
    r = prune(Store.open(sys.argv[1]), max_unused="0%")
    print(r.deferred, r.bytes_freed, flush=True)
""")


def test_prune_waits_for_a_reader_that_located_its_blobs_before_the_rewrite(tmp_path):
    root = tmp_path / "store"
    st = _store(root)
    data_before = _files(root)
    go = tmp_path / "go"
    env = dict(os.environ, SNAPSTORE_PRUNE_READER_WAIT="300")
    reader = subprocess.Popen([sys.executable, "-c", READER.format(root=str(ROOT), base=BASE, table=TABLE),
                               str(root), str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    pruner = None
    try:
        assert reader.stdout.readline().strip() == "located", reader.stderr.read()
        pruner = subprocess.Popen([sys.executable, "-c", PRUNER.format(root=str(ROOT)), str(root)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # prune has rewritten the catalog and reached its deletion phase: it waits for the reader
        for line in pruner.stderr:
            if "waiting for 1 reader(s)" in line:
                break
        else:
            raise AssertionError(f"prune never waited: {pruner.stdout.read()}")
        assert _files(root) >= data_before  # nothing deleted yet
        go.write_text("read")
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        assert int(out) == 800  # 2 kept snapshots x 400 records, all read from the packs as they were
        out, err = pruner.communicate(timeout=120)
        assert pruner.returncode == 0, err
        deferred, freed = map(int, out.split())
        assert deferred == 0 and freed > 0
    finally:
        for p in (reader, pruner):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert not data_before <= _files(root)  # what this prune found dead is gone now
    assert list(st.backend.list(readers.PREFIX)) == []
    rep = verify(Store.open(root), read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()


def test_a_reader_that_comes_while_prune_deletes_waits_for_it(tmp_path):
    root = tmp_path / "store"
    st = _store(root)
    with readers.deleting(st.backend, limit=0) as clear:  # a prune deleting, as another process sees it
        assert clear
        r = CliRunner().invoke(main, ["show", "--store", str(root), "latest"],
                               env={"SNAPSTORE_CONFIG": None, "SNAPSTORE_PRUNE_READER_WAIT": "0"})
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.exit_code == 11 and len(lines) == 1 and "a prune is deleting" in lines[0], r.output
        assert list(st.backend.list(readers.PREFIX)) == [(readers.GATE, st.backend.size(readers.GATE))]
    r = CliRunner().invoke(main, ["show", "--store", str(root), "latest"], env={"SNAPSTORE_CONFIG": None})
    assert r.exit_code == 0, r.output
    assert list(st.backend.list(readers.PREFIX)) == []  # the reader's entry went with it


def test_prune_defers_deleting_while_a_reader_stays_and_the_next_prune_deletes(tmp_path, monkeypatch):
    root = tmp_path / "store"
    st = _store(root)
    before = {s.full_id: sorted(json.dumps(x, sort_keys=True) for x in st.records(s, BASE, TABLE))
              for s in st.list_snapshots()}
    data_before = _files(root)
    monkeypatch.setenv(readers.WAIT_ENV, "0")
    key = readers.register(st.backend, "export")  # this process reads: alive
    res = prune(st, max_unused="0%")
    assert res.deferred == 1 and _files(root) >= data_before
    assert {s.full_id: sorted(json.dumps(x, sort_keys=True) for x in st.records(s, BASE, TABLE))
            for s in st.list_snapshots()} == before
    assert verify(st, read_data=True).ok
    readers.unregister(st.backend, key)
    # a dead reader's entry (its pid gone on this host) is stale: ignored and removed
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    doc = dict(readers._body("export"), pid=int(dead.stdout))
    readers._put(st.backend, f"{readers.PREFIX}/dead.json", doc)
    again = prune(st, max_unused="0%")
    assert again.deferred == 0 and not data_before <= _files(root)
    assert list(st.backend.list(readers.PREFIX)) == []
    rep = verify(st, read_data=True)
    assert rep.ok and not rep.warnings, rep.to_dict()
