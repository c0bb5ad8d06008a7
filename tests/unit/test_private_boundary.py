"""Each module owns its private names: no module imports another's ``_names`` or reaches into
another object's ``_attributes``, except the known cases listed here, each waiting for its owner
to offer the operation the others need (then it leaves this list).

test_writer_boundary.py guards one direction (the writer never reaches into the store); this
guards the other (nobody reaches into the writer, the store, prune or the journal). The check
reads the source (ast), so a new reach-in fails here, and so does a fixed one still listed.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: ``os._exit`` is the standard library's public way to end a process at once, not a reach-in.
PUBLIC = {"_exit", "_asdict", "_replace", "_fields", "_make"}

#: (module, private name it imports from another module) still to be given a public name.
KNOWN_IMPORTS = {
    ("snapstore/ops/stats.py", "snapstore.ops.prune._att_ids"),
    ("snapstore/ops/stats.py", "snapstore.ops.prune._read_checked"),
    ("snapstore/ops/stats.py", "snapstore.ops.prune._reader"),
    ("snapstore/restore/revert.py", "snapstore.restore.journal._atomic_write"),
    ("snapstore/restore/revert.py", "snapstore.restore.values._norm"),
    ("snapstore/restore/revert.py", "snapstore.restore.values._write_value"),
    ("snapstore/restore/run.py", "snapstore.restore.journal._atomic_write"),
    ("snapstore/restore/run.py", "snapstore.restore.plan._plan_from_dict"),
    ("snapstore/restore/run.py", "snapstore.restore.plan._plan_to_state"),
    ("snapstore/restore/run.py", "snapstore.restore.values._text_of"),
    ("snapstore/restore/run.py", "snapstore.restore.values._write_value"),
    ("snapstore/restore/sources.py", "snapstore.restore.folder._load_json_records"),
    ("snapstore/restore/sources.py", "snapstore.restore.folder._read_layout"),
    ("snapstore/restore/sources.py", "snapstore.restore.folder._record_from_export"),
    ("snapstore/arrowread.py", "snapstore_exporters.parquet_writer._Columns"),
    ("snapstore/arrowread.py", "snapstore_exporters.parquet_writer._TS"),
    ("snapstore/arrowread.py", "snapstore_exporters.parquet_writer._schema_of"),
    ("snapstore/ops/sql.py", "snapstore_exporters.parquet_writer._schema_of"),
    ("snapstore/commands/serve.py", "snapstore.commands.runhook._META"),
    ("snapstore/ops/snapshot_comments.py", "snapstore.ops.snapshot._scan_attachments"),
}

#: (module, private attribute of an object it does not own) -> how many times.
KNOWN_ATTRIBUTES = Counter({
    ("snapstore/ops/snapshot.py", "_downloads"): 2, ("snapstore/ops/snapshot.py", "_writers"): 2,
    ("snapstore/ops/snapshot.py", "_missing"): 1, ("snapstore/ops/snapshot.py", "_lock"): 1,
    ("snapstore/ops/snapshot.py", "_mutex"): 1, ("snapstore/ops/snapshot.py", "_bases"): 1,
    ("snapstore/ops/snapshot.py", "_tables"): 1,
    ("snapstore/ops/verify.py", "_read_commit"): 1, ("snapstore/ops/verify.py", "_manifest"): 1,
    ("snapstore/ops/verify.py", "_fold_manifest"): 1, ("snapstore/ops/prune.py", "_manifest"): 1,
    ("snapstore/store/store.py", "_unlock"): 2, ("snapstore/store/store.py", "_ensure_catalog"): 2,
    ("snapstore/store/store.py", "_remember_remote_state"): 1, ("snapstore/store/store.py", "_frames"): 1,
    ("snapstore/store/writer.py", "_known"): 2, ("snapstore/store/writer.py", "_add_blobs"): 1,
    ("snapstore/store/writer.py", "_table_done"): 1, ("snapstore/store/writer.py", "_mutex"): 1,
    ("snapstore/store/writer.py", "_extra_bytes"): 1, ("snapstore/store/writer.py", "_put_dict"): 1,
    ("snapstore/store/writer.py", "_add_frames"): 1, ("snapstore/store/writer.py", "_tables"): 1,
    ("snapstore/store/writer.py", "_compress_pool"): 1, ("snapstore/store/writer.py", "_objects_written"): 1,
    ("snapstore/store/hashset.py", "_rows"): 1, ("snapstore/restore/folder.py", "_note_att"): 1,
    ("snapstore/source/throttle.py", "_done"): 1, ("snapstore/emulator/churn.py", "_unique_name"): 2,
    ("snapstore/emulator/faults.py", "_rng"): 1, ("snapstore/arrowread.py", "_reporter"): 1,
    ("snapstore/feed/engine.py", "_lock"): 1, ("snapstore/feed/engine.py", "_fail"): 1,
})


def _sources():
    for folder in ("snapstore", "exporters"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield str(p.relative_to(ROOT)), ast.parse(p.read_text(encoding="utf-8"))


def private_imports() -> set[tuple[str, str]]:
    out = set()
    for rel, tree in _sources():
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] in ("snapstore", "snapstore_exporters"):
                out |= {(rel, f"{n.module}.{a.name}") for a in n.names
                        if a.name.startswith("_") and not a.name.startswith("__")}
    return out


def private_attributes() -> Counter:
    """``x._name`` where ``x`` is not ``self`` or ``cls``: another object's private state."""
    out: Counter = Counter()
    for rel, tree in _sources():
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
                    and n.attr not in PUBLIC
                    and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))):
                out[(rel, n.attr)] += 1
    return out


def test_the_check_sees_a_reach_in():
    tree = ast.parse("from snapstore.ops.prune import _reader\nstore._manifest(x)\nself._ok\nos._exit(1)\n")
    imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and not (isinstance(n.value, ast.Name) and n.value.id == "self") and n.attr not in PUBLIC}
    assert imports == {"_reader"} and attrs == {"_manifest"}


def test_no_module_imports_another_modules_private_names():
    found = private_imports()
    assert found - KNOWN_IMPORTS == set(), "new: give the name a public spelling in its module"
    assert KNOWN_IMPORTS - found == set(), "fixed: remove it from KNOWN_IMPORTS"


def test_no_module_reaches_into_another_objects_private_state():
    found = private_attributes()
    new = {k: v for k, v in found.items() if v > KNOWN_ATTRIBUTES.get(k, 0)}
    gone = {k: v for k, v in KNOWN_ATTRIBUTES.items() if found.get(k, 0) < v}
    assert new == {}, "new: ask the owner for an operation instead"
    assert gone == {}, "fixed: lower or remove it in KNOWN_ATTRIBUTES"
