"""Safe, unique names for export files on Linux, macOS and Windows; CSV list flattening."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from exporters.naming import NameAllocator, UnsafePath, inside, safe_filename, safe_name
from exporters.values import csv_cell, guard_formula, split_csv_list


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
