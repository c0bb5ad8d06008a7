"""Comments come back with a restore (issue 18): on the mapped records, in their original order,
replies under their parent, the original author and time at the start of the text; from a snapshot and
from an exported folder (json / ndjson / yaml comments files); imported into a store; --no-comments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from restore_helpers import emulated, new_base
from restore_helpers import snapshot as _snapshot

from snapstore import restore as R
from snapstore.emulator import generate_workspace
from snapstore.restore.comments import PREFIX, attributed_text, original_text
from snapstore.store import Store


def snapshot(store, client, base_id):
    return _snapshot(store, client, base_id, comments=True)


def comment_view(comments: dict[str, list[dict]], rec_map: dict[str, str] | None = None) -> dict:
    """record -> [(author, time, text)] newest first, the restored ones read through their prefix."""
    out = {}
    for rid, cs in comments.items():
        rows = []
        for c in cs:
            m = PREFIX.match(c["text"])
            if m and rec_map is not None:
                rows.append((m["who"], m["when"], original_text(c["text"]), bool(c.get("parentCommentId"))))
            else:
                a = c["author"]
                rows.append((f"{a['name']} <{a['email']}>", c["createdTime"], c["text"], bool(c.get("parentCommentId"))))
        out[(rec_map or {}).get(rid, rid)] = rows
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    ws = generate_workspace(seed=4, bases=1, tables_per_base=2, records_per_table=15, attachment_share=0.0,
                            link_share=0.5, comment_share=0.5)
    with emulated(ws, tmp_path_factory, comments=True) as env:
        yield env


def assert_same_comments(store, snap, base, dst, target, id_map_file):
    idmap = json.loads(Path(id_map_file).read_text())
    total = 0
    for t in snap.bases[0].tables:
        m = idmap[t.table_id]
        back = {new: old for old, new in m["records"].items()}
        src = store.comments(snap, base, t.table_id)
        want = comment_view(src)
        got = comment_view(store.comments(dst, target, m["new_table"]), back)
        assert set(got) == set(want), t.name
        for rid, rows in want.items():
            # in their original order, unless a reply is older than its parent (the generator makes
            # some; Airtable cannot): then the parent is posted first
            causal = all(c["createdTime"] >= p["createdTime"] for c in src[rid] for p in src[rid]
                         if c.get("parentCommentId") == p["id"])
            assert (got[rid] if causal else sorted(got[rid])) == (rows if causal else sorted(rows)), (t.name, rid)
        total += sum(len(v) for v in want.values())
    return total


def test_snapshot_restore_snapshot_keeps_every_comment_in_order(env):
    emu, client, store, snap, base = env["emu"], env["client"], env["store"], env["snap"], env["base"]
    total = sum(len(v) for t in snap.bases[0].tables for v in store.comments(snap, base, t.table_id).values())
    replies = sum(1 for t in snap.bases[0].tables for v in store.comments(snap, base, t.table_id).values()
                  for c in v if c.get("parentCommentId"))
    assert total > 10 and replies > 0
    target = new_base(emu)
    src = R.SnapshotSource(store, snap)
    plan = R.restore(src, to_base=target, client=client, dry_run=True)
    assert plan.comments_restored == total
    rep = R.restore(src, to_base=target, client=client)
    assert rep.status == "complete" and rep.comments_restored == total
    dst = snapshot(store, client, target)
    assert assert_same_comments(store, snap, base, dst, target, rep.id_map_file) == total
    # a restore of the restored base keeps the first author's attribution (one prefix, not two)
    again = new_base(emu, "Again")
    rep2 = R.restore(R.SnapshotSource(store, dst), to_base=again, client=client)
    dst2 = snapshot(store, client, again)
    texts = [c["text"] for t in dst2.bases[0].tables for v in store.comments(dst2, again, t.table_id).values()
             for c in v]
    assert len(texts) == total and all(len(PREFIX.findall(x)) == 1 and x.count(" · ") == 1 for x in texts)
    assert rep2.comments_restored == total


def test_interrupted_comments_resume_without_duplicates(env):
    emu, client, store, snap, base = env["emu"], env["client"], env["store"], env["snap"], env["base"]
    target = new_base(emu, "Interrupted")
    src = R.SnapshotSource(store, snap)
    with pytest.raises(R.SimulatedCrash):
        R.restore(src, to_base=target, client=client, fail_after=("comments", 3))
    rep = R.restore(src, to_base=target, client=client)
    dst = snapshot(store, client, target)
    assert assert_same_comments(store, snap, base, dst, target, rep.id_map_file) == rep.comments_restored + 3


def test_no_comments_posts_none(env):
    emu, client, store, snap = env["emu"], env["client"], env["store"], env["snap"]
    target = new_base(emu, "No comments")
    rep = R.restore(R.SnapshotSource(store, snap), to_base=target, client=client, comments=False)
    assert rep.comments_restored == 0
    dst = snapshot(store, client, target)
    assert all(not store.comments(dst, target, t.table_id) for t in dst.bases[0].tables)


def _export_with_comments(env, out: Path, fmt: str) -> Path:
    """An export with the comments files the exporter writes (data/<fmt>/<base>/<table>.comments.<fmt>)."""
    from snapstore_exporters.export import export_snapshot, write_manifest

    store, snap, base = env["store"], env["snap"], env["base"]
    folder = Path(export_snapshot(store, snap, out, formats=["json"]).path)
    doc = json.loads((folder / "metadata" / "snapshot.json").read_text())
    for b in doc["bases"]:
        for t in b["tables"]:
            rows = [{"record_id": rid, "comments": cs} for rid, cs in sorted(store.comments(snap, base, t["table_id"]).items())]
            d = folder / "data" / fmt / b["folder"]
            d.mkdir(parents=True, exist_ok=True)
            p = d / f"{t['file_stem']}.comments.{fmt}"
            if fmt == "ndjson":
                p.write_text("".join(json.dumps(r) + "\n" for r in rows))
            elif fmt == "yaml":
                p.write_text(yaml.safe_dump(rows, allow_unicode=True))
            else:
                p.write_text(json.dumps(rows))
    (folder / "metadata" / "manifest.json").unlink()
    write_manifest(folder, snap)
    return folder


@pytest.mark.parametrize("fmt", ["json", "ndjson", "yaml"])
def test_folder_comments_restore_and_import(env, fmt):
    emu, client, store, snap, base = env["emu"], env["client"], env["store"], env["snap"], env["base"]
    folder = _export_with_comments(env, env["tmp"] / f"exp-{fmt}", fmt)
    other = Store.open(env["tmp"] / f"imported-{fmt}", create=True)
    info = R.import_folder(folder, other)
    for t in snap.bases[0].tables:
        assert other.comments(info, base, t.table_id) == store.comments(snap, base, t.table_id)
    target = new_base(emu, f"From {fmt}")
    rep = R.restore(R.FolderSource(folder), to_base=target, client=client)
    dst = snapshot(store, client, target)
    assert assert_same_comments(store, snap, base, dst, target, rep.id_map_file) == rep.comments_restored > 0


def test_attribution_prefix():
    c = {"author": {"id": "usr1", "email": "ada@example.com", "name": "Ada"}, "text": "hello\nthere",
         "createdTime": "2024-01-02T03:04:05.000Z"}
    t = attributed_text(c)
    assert t == "[Ada <ada@example.com> · 2024-01-02T03:04:05.000Z] hello\nthere"
    assert attributed_text({**c, "text": t}) == t and original_text(t) == "hello\nthere"


def test_cli_no_comments(env, monkeypatch):
    from snapstore.commands.restore import restore

    emu, store, snap = env["emu"], env["store"], env["snap"]
    monkeypatch.setenv("AIRTABLE_TOKEN", emu.token)
    monkeypatch.setenv("AIRTABLE_API_URL", emu.url)
    target = new_base(emu, "CLI no comments")
    res = CliRunner().invoke(restore, [snap.id, "--store", str(store.root), "--to-base", target, "--no-comments",
                                           "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["comments"]["restored"] == 0
    assert "records created" in res.stderr  # progress, one line a table


def _delete_commented(env, table, n: int) -> list[str]:
    """Delete ``n`` records of ``table`` that have comments (one with a reply first)."""
    store, snap, base, client = env["store"], env["snap"], env["base"], env["client"]
    stored = store.comments(snap, base, table.table_id)
    with_reply = [rid for rid, cs in stored.items() if any(c.get("parentCommentId") for c in cs)]
    others = [rid for rid in stored if rid not in with_reply]
    gone = sorted((with_reply[:1] + others)[:n])
    client.api.table(base, table.table_id).batch_delete(gone)
    return gone


def _reverted_comments(env, rep, table_id, gone):
    """The re-created records' comments as the live base has them now, keyed by their old ids."""
    client, base = env["client"], env["base"]
    new_id = json.loads(Path(rep.id_map_file).read_text())[table_id]
    return comment_view({old: client.comments(base, table_id, new_id[old]) for old in gone}, {})


def test_revert_recreates_deleted_records_with_their_comments_resuming_after_a_kill(env, monkeypatch):
    from snapstore.restore.journal import RestoreJournal

    store, snap, base, client = env["store"], env["snap"], env["base"], env["client"]
    table = snap.bases[0].tables[0]
    gone = _delete_commented(env, table, 4)
    want = comment_view({r: store.comments(snap, base, table.table_id)[r] for r in gone}, {r: r for r in gone})
    total = sum(len(v) for v in want.values())
    assert total >= 5 and any(row[3] for rows in want.values() for row in rows)  # a reply among them
    src = R.SnapshotSource(store, snap)
    plan = R.revert(src, client=client, base_id=base, table=table.table_id, dry_run=True)
    assert plan.comments_restored == total and plan.plan["comments"] == total
    # killed after three comments were posted and journaled
    with pytest.raises(R.SimulatedCrash):
        R.revert(src, client=client, base_id=base, table=table.table_id, fail_after=("comments", 3))
    # killed again between posting the fifth comment and journaling it: the next run adopts it
    real = RestoreJournal.map_comment
    calls = []

    def dies_on_the_second(self, *a):
        calls.append(a)
        if len(calls) == 2:
            raise R.SimulatedCrash("killed")
        return real(self, *a)

    monkeypatch.setattr(RestoreJournal, "map_comment", dies_on_the_second)
    with pytest.raises(R.SimulatedCrash):
        R.revert(src, client=client, base_id=base, table=table.table_id)
    monkeypatch.setattr(RestoreJournal, "map_comment", real)
    rep = R.revert(src, client=client, base_id=base, table=table.table_id)
    assert rep.status == "complete" and rep.comments_restored == total - 5 and not rep.warnings
    got = _reverted_comments(env, rep, table.table_id, gone)
    # each once, oldest first, replies under their parent (the restored text carries author and time)
    for rid, rows in want.items():
        assert sorted(got[rid]) == sorted(rows), rid
        assert len(got[rid]) == len(rows)
    replied = next(r for r in gone if any(row[3] for row in want[r]))
    live = client.comments(base, table.table_id, json.loads(Path(rep.id_map_file).read_text())[table.table_id][replied])
    by_id = {c["id"]: c for c in live}
    assert all(by_id[c["parentCommentId"]]["createdTime"] <= c["createdTime"] for c in live
               if c.get("parentCommentId"))


def test_revert_cli_reports_comments_and_warns_when_none_were_captured(env, tmp_path, monkeypatch):
    from snapstore.commands.restore import restore

    emu, client, base = env["emu"], env["client"], env["base"]
    monkeypatch.setenv("AIRTABLE_TOKEN", emu.token)
    monkeypatch.setenv("AIRTABLE_API_URL", emu.url)
    store, snap = env["store"], env["snap"]
    table = snap.bases[0].tables[1]
    gone = _delete_commented(env, table, 2)
    n = sum(len(store.comments(snap, base, table.table_id)[r]) for r in gone)
    res = CliRunner().invoke(restore, [snap.id, "--store", str(store.root), "--revert", "--base", base, "--table",
                                       table.table_id, "--yes", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["comments"]["restored"] == n > 0
    # a snapshot taken without --comments: the records come back, and the report says their comments cannot
    plain = _snapshot(store, client, base, comments=False)
    client.api.table(base, table.table_id).batch_delete([r["id"] for r in client.api.table(base, table.table_id).all()][:1])
    res = CliRunner().invoke(restore, [plain.id, "--store", str(store.root), "--revert", "--base", base, "--table",
                                       table.table_id, "--yes", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["comments"]["restored"] == 0
    assert any("taken without --comments" in w for w in doc["warnings"])
