"""Only the catalog package knows the catalog's tables and columns (issue 17): a verb calls the
named functions of ``snapstore/store/catalog/``, so a column changes in one place."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "snapstore"
CATALOG = PACKAGE / "store" / "catalog"

#: The verbs whose catalog queries moved into the catalog package (each has a module of the same
#: name there): they run no query at all of their own.
CHECKED = ["prune.py", "retention.py", "stats.py", "verify.py", "diff.py", "find.py"]

_TABLES = r"(?:snapshot_table|snapshot|at_table|pack|blob|frame|record_version|attachment)"
#: SQL against a catalog table: SQL's keywords in capitals, as the code writes them, so prose
#: such as "read from the pack" is not taken for SQL; and the table names no prose uses.
SQL = re.compile(rf"\b(?:FROM|JOIN|INTO|UPDATE|DELETE FROM|TABLE)\s+{_TABLES}\b"
                 r"|\brecord_version\b|\bsnapshot_table\b|\bat_table\b")
#: The catalog's ``meta`` table, in a module that uses the catalog: the restore journal (a SQLite
#: file of its own, which never names the catalog) has a ``meta`` table too.
META = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|DELETE FROM|TABLE)\s+meta\b")


def offenders(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: text`` of every line of ``path`` that holds SQL against the catalog."""
    text = path.read_text()
    patterns = [SQL, META] if "catalog" in text else [SQL]
    return [f"{path.relative_to(root)}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if any(p.search(line) for p in patterns)]


def test_offenders_names_the_catalogs_meta_only_where_the_catalog_is_used(tmp_path):
    (tmp_path / "a.py").write_text('with store.catalog.read() as con:\n    con.execute("SELECT value FROM meta")\n')
    (tmp_path / "b.py").write_text('self.con.execute("SELECT v FROM meta WHERE k = ?")\n')
    assert offenders(tmp_path / "a.py", tmp_path) == ['a.py:2: con.execute("SELECT value FROM meta")']
    assert offenders(tmp_path / "b.py", tmp_path) == []


def outside_the_catalog() -> list[Path]:
    """Every module of snapstore and exporters but the catalog package's."""
    return sorted(p for p in [*PACKAGE.rglob("*.py"), *(ROOT / "exporters").rglob("*.py")] if CATALOG not in p.parents)


def test_no_module_outside_the_catalog_package_holds_catalog_sql():
    found = [o for p in outside_the_catalog() for o in offenders(p)]
    assert not found, "SQL against the catalog outside snapstore/store/catalog/ (call a catalog function):\n" \
        + "\n".join(found)


def test_the_checked_verbs_hold_no_sql_of_their_own():
    found = [o for name in CHECKED for o in offenders(PACKAGE / "ops" / name)]
    # nor run any query themselves (a query on a registered view names no catalog table)
    found += [f"snapstore/{name}:{n}: {line.strip()}" for name in CHECKED
              for n, line in enumerate((PACKAGE / "ops" / name).read_text().splitlines(), 1) if ".execute(" in line]
    assert not found, "SQL against the catalog outside snapstore/store/catalog/ (call a catalog function):\n" \
        + "\n".join(found)


def test_the_check_finds_the_sql_it_looks_for():
    # the detector itself: the catalog's own prune, retention and stats functions are full of it,
    # and every table name is caught in the shapes the code writes
    for name in CHECKED:
        assert offenders(CATALOG / name), name
    for sql in ("SELECT count(*) FROM snapshot", "JOIN pack p ON p.pack_seq = b.pack_seq", "DELETE FROM frame",
                "INSERT INTO attachment VALUES", "UPDATE blob SET off = 0", "ASOF JOIN snapshot_table st",
                "SELECT DISTINCT hash FROM record_version"):
        assert SQL.search(sql), sql
    for prose in ("read one pack from the store", "the blob's frame", "a snapshot from the attachment index",
                  "INSERT INTO rmap VALUES (?, ?, ?)", "a snapshot_tables_count"):
        assert not SQL.search(prose), prose
