"""The snapshot writer stands on its own: it receives a WriteContext, never the Store (issue 17).

store.py imports the writer to begin snapshots; if the writer imported store.py back (even for
type hints) or reached into the store's private methods, the two would again be one module in
two files. These checks read writer.py's source, so the cycle cannot quietly come back.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import snapstore.store.writer as writer_mod
from snapstore.store import Store
from snapstore.store.write_context import WriteContext

STORE_PKG = Path(writer_mod.__file__).parent
TREE = ast.parse(Path(writer_mod.__file__).read_text())


def _imported_modules(tree: ast.AST) -> set[str]:
    """Every module the source imports, ``from snapstore.store import x`` counted as
    ``snapstore.store.x`` (a submodule) or ``snapstore.store`` (a name of the package, which
    imports store.py)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = node.module.startswith("snapstore") and (
                    (STORE_PKG.parent.parent / (sub.replace(".", "/") + ".py")).exists()
                    or (STORE_PKG.parent.parent / sub.replace(".", "/")).is_dir())
                out.add(sub if is_module else node.module)
    return out


def test_the_ast_check_sees_an_import_of_the_store():
    """The checks below would catch the old writer: it imported Store under TYPE_CHECKING."""
    old = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from snapstore.store.store import SnapshotInfo, Store\n"
                    "from snapstore.store import Store as S, objects\n")
    assert {"snapstore.store.store", "snapstore.store", "snapstore.store.objects"} <= _imported_modules(old)


def test_writer_imports_nothing_that_imports_the_store():
    mods = _imported_modules(TREE)
    assert "snapstore.store.store" not in mods
    assert "snapstore.store" not in mods  # the package's __init__ imports store.py
    assert not any(m.startswith("snapstore.store.store.") for m in mods)


def test_writer_names_no_store():
    """No ``Store`` name, no ``.store`` attribute: the writer holds a WriteContext only."""
    names = {n.id for n in ast.walk(TREE) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(TREE) if isinstance(n, ast.Attribute)}
    assert "Store" not in names
    assert "store" not in attrs


def test_writer_calls_no_private_attribute_of_its_context():
    """Through the context the writer uses public fields only (``ctx._x`` would be the store's
    privates coming back by another door)."""
    private = []
    for node in ast.walk(TREE):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = node.value
            holder = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if holder == "ctx":
                private.append(f"line {node.lineno}: ctx.{node.attr}")
    assert private == []


@pytest.mark.parametrize("fmt", [1, 3])
def test_begin_snapshot_hands_over_a_context_not_the_store(tmp_path, fmt):
    store = Store.init(tmp_path / "s", format_version=fmt)
    w = store.begin_snapshot()
    try:
        assert isinstance(w.ctx, WriteContext)
        assert not any(isinstance(v, Store) for v in vars(w).values())
        assert not any(isinstance(getattr(w.ctx, f.name), Store) for f in dataclasses.fields(WriteContext))
        # the settings are the store's own
        assert (w.ctx.format_version, w.ctx.record_level, w.ctx.record_end, w.ctx.framed) == \
            (store.format_version, store.record_level, store.record_end, fmt >= 2)
        assert w.ctx.store_id == store.config["store_id"] and w.ctx.catalog is store.catalog
    finally:
        w.abandon()
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.ctx.record_level = 1  # type: ignore[misc]
