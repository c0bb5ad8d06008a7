"""What `pip install` installs: every package folder, and the exporters under a name of their own."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_folder_is_installed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "snapstore").rglob("__init__.py")}
    assert folders - listed == set(), "package folders pyproject.toml does not install"
    assert conf["package-dir"] == {"snapstore_exporters": "exporters"}
    assert "exporters" not in listed


def test_the_exporters_import_under_their_installed_name_only():
    import snapstore_exporters.export as export

    assert Path(export.__file__).resolve().parent == ROOT / "exporters"
    offenders = [str(p.relative_to(ROOT)) for d in ("snapstore", "exporters", "tests", "bench")
                 for p in (ROOT / d).rglob("*.py")
                 if any(line.lstrip().startswith(("from exporters", "import exporters"))
                        for line in p.read_text().splitlines())]
    assert offenders == []
