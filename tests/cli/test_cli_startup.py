"""Start-up: ``snapstore --help``, ``snapstore VERB --help`` and usage errors load neither the store
(DuckDB, Arrow, zstd) nor the Airtable client (pyairtable, requests), so they answer at once; a verb
that runs imports them with the stop signals held (snapstore/commands/base.py: ``preload``). The
time itself is measured, not asserted: the figures are in the commit that made the imports lazy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

HEAVY = ("pyairtable", "duckdb", "pyarrow", "zstandard", "requests", "snapstore.store", "snapstore.source")


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_importing_the_cli_loads_no_heavy_module():
    p = _python(f"""
        import json, sys
        import snapstore.cli
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_help_of_every_verb_and_usage_errors_load_no_heavy_module():
    """Every verb's --help (the group's, the feed and key subcommands') and a usage error answer
    with their text and exit code, and none of them imported the store or the Airtable client."""
    p = _python(f"""
        import json, sys
        from snapstore.cli import main
        from snapstore.commands.base import invoke_safely

        def paths(cmd, prefix):
            yield prefix
            for name, sub in getattr(cmd, "commands", {{}}).items():
                yield from paths(sub, prefix + [name])

        codes = {{}}
        for path in paths(main, []):
            codes[" ".join(path) or "snapstore"] = invoke_safely(main, [*path, "--help"], "snapstore")
        codes["usage"] = invoke_safely(main, ["export", "--workers", "0"], "snapstore")
        codes["unknown"] = invoke_safely(main, ["log", "--bogus"], "snapstore")
        print(json.dumps({{"codes": codes, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
    """)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout.splitlines()[-1])
    codes = doc["codes"]
    assert codes.pop("usage") == 2 and codes.pop("unknown") == 2
    assert len(codes) > 25 and set(codes.values()) == {0}, codes  # every verb, feed's and key's too
    assert "Usage: snapstore export" in p.stdout and "--workers" in p.stderr
    assert doc["loaded"] == []


def test_the_console_script_help_is_its_text():
    p = subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", "--help"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Usage: snapstore" in p.stdout and "snapshot" in p.stdout, p.stderr


def test_constants_the_cli_declares_without_importing_the_library_are_the_librarys():
    """The option defaults and limits the CLI declares without importing the library are the
    library's own objects, from snapstore/constants.py, which imports nothing."""
    import ast
    from pathlib import Path

    import snapstore.constants as constants
    from snapstore.commands import export, init, options, output
    from snapstore.commands.diff_render import FORMATS
    from snapstore.source import DEFAULT_API_URL
    from snapstore.store.store import FORMAT_VERSION

    assert not [n for n in ast.walk(ast.parse(Path(constants.__file__).read_text()))
                if isinstance(n, ast.Import | ast.ImportFrom)]
    assert options.DEFAULT_API_URL is DEFAULT_API_URL is constants.DEFAULT_API_URL
    assert init.FORMAT_VERSION is FORMAT_VERSION is constants.FORMAT_VERSION
    assert output.DIFF_FORMATS is FORMATS is constants.DIFF_FORMATS
    assert export.MAX_WORKERS is constants.MAX_WORKERS


STOP_DURING_IMPORT = """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    import snapstore.cli
    snapstore.cli.main.commands["log"].imports = ("stopper",)
    from snapstore.entry import run
    sys.argv = ["snapstore", "log", "--store", sys.argv[1]]
    run()
"""

STOPPER = """
import os, signal, sys
from pathlib import Path
os.kill(os.getpid(), signal.SIGTERM)  # a service manager's stop, in the middle of the imports
Path(os.environ["STOPPER_MARK"]).write_text("imported whole")
"""


def test_a_stop_during_a_verbs_imports_waits_for_their_end_then_exits_130(tmp_path):
    """The heavy imports a verb needs run with SIGINT and SIGTERM held: a stop that arrives in the
    middle of one (here: a module that signals its own process while it is being imported) lets the
    import finish, then ends the command with exit 130 and one line, before it touched anything."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "stopper.py").write_text(STOPPER)
    mark = tmp_path / "mark"
    store = tmp_path / "store"
    p = _python(STOP_DURING_IMPORT, str(store), str(mods), env={"STOPPER_MARK": str(mark)})
    assert mark.read_text() == "imported whole", p.stderr  # no KeyboardInterrupt inside the import
    assert p.returncode == 130, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:"), p.stderr
    assert not store.exists()
