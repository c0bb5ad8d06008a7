"""Loading a workspace refuses what Airtable's own create routes refuse (issue 18): field names equal
ignoring case, a link to a table that does not exist, a lookup/rollup over a field that does not exist."""

from __future__ import annotations

import copy

import pytest

from snapstore.emulator import generate_workspace
from snapstore.emulator.validate import WorkspaceRefused
from snapstore.emulator.workspace_io import from_dict, to_dict


@pytest.fixture(scope="module")
def doc():
    ws = generate_workspace(seed=2, bases=1, tables_per_base=3, records_per_table=3, attachment_share=0.0,
                            link_share=0.5, comment_share=0.0)
    return to_dict(ws)


def _tables(d):
    return d["bases"][0]["schema"]["tables"]


def test_a_generated_workspace_loads(doc):
    ws = from_dict(copy.deepcopy(doc))
    assert sum(len(b.tables) for b in ws.bases) == 3


def _field_of(d, typ):
    return next((t, f) for t in _tables(d) for f in t["fields"] if f["type"] == typ)


def test_case_only_duplicate_field_names_are_refused(doc):
    d = copy.deepcopy(doc)
    t = _tables(d)[0]
    first = next(f for f in t["fields"] if f["id"] == t["primaryFieldId"])
    t["fields"].append({"id": "fldCASECLASH00001", "name": first["name"].swapcase(), "type": "singleLineText"})
    with pytest.raises(WorkspaceRefused, match=f"{first['name']!r} and {first['name'].swapcase()!r} are the same"):
        from_dict(d)


def test_a_link_to_a_missing_table_is_refused(doc):
    d = copy.deepcopy(doc)
    _t, f = _field_of(d, "multipleRecordLinks")
    f["options"]["linkedTableId"] = "tblDOESNOTEXIST01"
    with pytest.raises(WorkspaceRefused, match="links to table tblDOESNOTEXIST01, which does not exist"):
        from_dict(d)


@pytest.mark.parametrize("typ", ["rollup", "multipleLookupValues"])
def test_a_rollup_or_lookup_over_a_missing_field_is_refused(doc, typ):
    d = copy.deepcopy(doc)
    _t, f = _field_of(d, typ)
    f["options"]["fieldIdInLinkedTable"] = "fldDOESNOTEXIST01"
    with pytest.raises(WorkspaceRefused, match=f"{typ} over field fldDOESNOTEXIST01, which does not exist"):
        from_dict(d)


def test_case_only_duplicate_table_names_are_refused(doc):
    d = copy.deepcopy(doc)
    _tables(d)[1]["name"] = _tables(d)[0]["name"].upper()
    with pytest.raises(WorkspaceRefused, match="table names .* are the same ignoring case"):
        from_dict(d)
