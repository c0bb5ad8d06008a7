"""Safe, unique names for export files on Linux, macOS and Windows; CSV list flattening."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from snapstore_exporters.naming import (
    NameAllocator,
    UnsafePath,
    inside,
    safe_column,
    safe_filename,
    safe_name,
    short_hash,
)
from snapstore_exporters.values import csv_cell, guard_formula, split_csv_list


@pytest.mark.parametrize("name,expected", [
    ("Projects", "Projects"), ("../escape", "_._escape"), ("..", "unnamed"), (".", "unnamed"), ("", "unnamed"),
    (None, "unnamed"), ("a/b\\c", "a_b_c"), ("CON", "_CON"), ("con.txt", "_con.txt"), ("COM1", "_COM1"),
    ("LPT9.csv", "_LPT9.csv"), ("Console", "Console"), ("trailing. . ", "trailing"), ("  spaced  ", "spaced"),
    ("tab\there\x00nul\x1f", "tab_here_nul_"), ('<>:"|?*', "_______"), (".hidden", "_hidden"),
    ("bidi\u202eevil", "bidievil"),
])
def test_safe_name(name, expected):
    assert safe_name(name) == expected


def test_long_names_cut_by_bytes_and_stay_distinct():
    a, b = "é" * 300, "é" * 299 + "è"
    sa, sb = safe_name(a), safe_name(b)
    assert len(sa.encode()) <= 100 and len(sb.encode()) <= 100 and sa != sb
    assert sa.encode().decode() == sa  # cut at a character boundary
    f = safe_filename("x" * 300 + ".jpeg")
    assert f.endswith(".jpeg") and len(f.encode()) <= 100


def test_unicode_normalised_and_case_insensitive_collisions():
    nfc, nfd = "Café", unicodedata.normalize("NFD", "Café")
    assert safe_name(nfd) == nfc
    alloc = NameAllocator()
    names = [alloc.take(n, ".json") for n in (nfc, nfd, "Tasks", "tasks", "TASKS", "a/b", "a_b")]
    assert len({n.casefold() for n in names}) == len(names)
    assert names[0] == "Café.json" and names[2] == "Tasks.json" and all(n.endswith(".json") for n in names)
    assert NameAllocator().take(nfd, ".json") == NameAllocator().take(nfd, ".json")  # stable across runs


def test_inside_refuses_escapes(tmp_path: Path):
    assert inside(tmp_path, "a", "b.json") == tmp_path / "a" / "b.json"
    for bad in ("..", "../x", "/etc/passwd", "a/b", "", "."):
        with pytest.raises(UnsafePath):
            inside(tmp_path, bad)
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsafePath):
        inside(tmp_path, "link", "etc")


def test_csv_flattening_rules():
    assert csv_cell(None) == ("", False)
    assert csv_cell(3) == ("3", True) and csv_cell(-0.5) == ("-0.5", True) and csv_cell(True) == ("true", False)
    assert csv_cell(["a", "b, c", 'd "e"', ""])[0] == 'a, "b, c", "d \\"e\\"", ""'
    assert split_csv_list(csv_cell(["a", "b, c", 'd "e"', "", " x"])[0]) == ["a", "b, c", 'd "e"', "", " x"]
    assert csv_cell([{"id": "usr1", "email": "a@x", "name": "A"}, {"id": "usr2", "name": "B"}])[0] == "a@x, B"
    assert csv_cell([{"id": "att1", "filename": "f.png", "path": "attachments/att1_f.png"}])[0] == "attachments/att1_f.png"
    assert csv_cell([{"id": "att1", "filename": "f.png"}])[0] == "f.png (att1)"
    assert csv_cell({"text": "1", "type": None})[0] == '{"text":"1","type":null}'
    assert csv_cell([{"error": "#ERROR!"}])[0] == '[{"error":"#ERROR!"}]'
    assert [guard_formula(x) for x in ("=1", "+1", "-1", "@a", "\tx", "\rx", "a=1")] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "a=1"]


# ---- control characters in table and field names: every format, through the CLI -----------------

def test_safe_column_replaces_control_characters_only():
    assert safe_column("Na\x00me") == "Na_me" and safe_column("tab\there\nnl\r") == "tab_here_nl_"
    assert safe_column("esc\x1b[31m\x7f\x85") == "esc_[31m__" and safe_column('a "b"/c.d') == 'a "b"/c.d'
    alloc = NameAllocator()
    names = [alloc.take(n, sanitize=safe_column) for n in ("Na\x00me", "na_ME", "Na\x01me", "")]
    assert names[0] == "Na_me" and len({n.casefold() for n in names}) == 4
    assert names[1] == "na_ME~" + short_hash("na_ME") and names[3] == "unnamed"
    again = NameAllocator()
    assert [again.take(n, sanitize=safe_column) for n in ("Na\x00me", "na_ME", "Na\x01me", "")] == names


HOSTILE_TABLE = "Pro\x00jects\x1b[31m\n"
HOSTILE_FIELDS = ("Na\x00me", "na_ME", "tab\there\r\nnl")


def _hostile(ws) -> None:
    t = ws.bases[0].tables[0]
    t.schema["name"] = HOSTILE_TABLE
    for f, name in zip(t.schema["fields"], HOSTILE_FIELDS, strict=False):
        f["name"] = name
    t.reindex()


def test_control_characters_in_names_export_in_every_format_through_the_cli(tmp_path):
    import csv
    import json
    import sqlite3
    import subprocess
    import sys

    import emuexport
    import pyarrow.parquet as pq

    emuexport.snapshot_store(tmp_path / "store", edit=_hostile, tables_per_base=1, records_per_table=15)
    r = subprocess.run([sys.executable, "-c", "from snapstore.cli import main; main()", "export", "latest",
                        "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    doc = json.loads(r.stdout)
    root = Path(doc["path"])
    row = doc["tables"][0]
    assert row["table"] == HOSTILE_TABLE and row["comments"]
    want = ["Na_me", "na_ME~" + short_hash("na_ME"), "tab_here__nl"]
    control = re.compile(r"[\x00-\x1f\x7f-\x9f]")
    # CSV: headers (records and comments) without control characters, read by the csv module
    for key in ("files", "comment_files"):
        with open(root / row[key]["csv"], encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f))
        assert not any(control.search(h) for h in header)
    assert header[:1] == ["record_id"]
    with open(root / row["files"]["csv"], encoding="utf-8-sig", newline="") as f:
        assert next(csv.reader(f))[2:5] == want
    # Parquet: the safe column names, the real name in the field metadata
    schema = pq.read_schema(root / row["files"]["parquet"])
    assert schema.names[2:5] == want
    assert schema.field(want[0]).metadata[b"airtable_name"] == HOSTILE_FIELDS[0].encode()
    assert pq.read_table(root / row["comment_files"]["parquet"]).num_rows == row["comments"]
    # SQLite: table, link, comments and column identifiers all queryable; the real names in the metadata
    con = sqlite3.connect(root / row["files"]["sqlite"])
    sql_table = con.execute("SELECT sql_table FROM _airtable_tables WHERE table_id = ?", [row["table_id"]]).fetchone()[0]
    assert sql_table == "Pro_jects_[31m_"
    assert con.execute(f'SELECT count("{want[0]}") FROM "{sql_table}"').fetchone()[0] == row["records"]
    assert con.execute(f'SELECT count(*) FROM "{sql_table}__comments"').fetchone()[0] == row["comments"]
    names = [r[0] for r in con.execute("SELECT name FROM _airtable_fields WHERE table_id = ? ORDER BY position",
                                       [row["table_id"]])]
    assert tuple(names[:3]) == HOSTILE_FIELDS
    assert not any(control.search(n) for (n,) in con.execute("SELECT name FROM sqlite_master"))
    # JSON, NDJSON, YAML keep Airtable's own field names (escaped by the format)
    for fmt in ("json", "ndjson", "yaml"):
        records = emuexport.read_items(root / row["files"][fmt])
        assert set(HOSTILE_FIELDS) <= {k for rec in records for k in rec["fields"]}
    assert not any(control.search(p.name) for p in root.rglob("*"))
