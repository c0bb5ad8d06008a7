"""`snapstore demo`, the README's first command, end to end as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_runs_the_whole_job_and_leaves_a_store_and_an_export(tmp_path):
    work = tmp_path / "demo"
    p = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "demo", "--dir", str(work),
                        "--bases", "1", "--tables", "2", "--records", "40"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stdout + p.stderr
    for verb in ("snapshot", "log", "diff", "export"):
        assert f"$ snapstore {verb}" in p.stdout
    assert "done: the store is in" in p.stdout
    exports = list((work / "exports").glob("airtable_backup_*"))
    assert len(exports) == 1
    summary = json.loads((exports[0] / "reports" / "summary.json").read_text())
    assert summary["totals"]["records"] == sum(t["records"] for t in summary["tables"]) > 0
    assert len(summary["tables"]) == 2
    assert (exports[0] / "data" / "ndjson").is_dir() and (exports[0] / "data" / "sqlite").is_dir()
    # the demo's store is a store: two snapshots, the second the parent of nothing
    log = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "log", "--json",
                          "--store", str(work / "store")], capture_output=True, text=True, timeout=120)
    assert log.returncode == 0 and len(json.loads(log.stdout)) == 2
    # a second run replaces its own previous demo folder
    again = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "demo", "--dir",
                            str(work), "--bases", "1", "--tables", "1", "--records", "5"],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
