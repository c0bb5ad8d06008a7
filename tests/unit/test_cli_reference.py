"""docs/cli.md names every command and every option the code has, as sqlite-utils checks its own
reference: a verb or flag added without regenerating the page (python docs/gen_cli.py) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from snapstore.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
HEADING = re.compile(r"^#{2,4} (snapstore(?: [\w-]+)*)$", re.M)


def commands() -> list[tuple[str, click.Command]]:
    out = []

    def walk(cmd: click.Command, path: str) -> None:
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            for name, sub in sorted(cmd.commands.items()):
                if not sub.hidden:
                    walk(sub, f"{path} {name}")

    walk(main, "snapstore")
    return out


def sections(text: str) -> dict[str, str]:
    """docs/cli.md cut at its command headings: {"snapstore feed enable": that section's text}."""
    marks = list(HEADING.finditer(text))
    return {m.group(1): text[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)]
            for i, m in enumerate(marks)}


def missing(text: str) -> list[str]:
    """Every command without a section, and every option flag absent from its command's section."""
    found = sections(text)
    gaps = []
    for path, cmd in commands():
        if path not in found:
            gaps.append(f"command `{path}`")
            continue
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts + param.secondary_opts:
                    if not re.search(rf"`[^`\n]*(?<![\w-]){re.escape(flag)}(?![\w-])[^`\n]*`", found[path]):
                        gaps.append(f"option {flag} of `{path}`")
    return gaps


def test_every_command_and_option_is_in_the_reference():
    gaps = missing(DOC.read_text(encoding="utf-8"))
    assert not gaps, f"docs/cli.md lacks {', '.join(gaps)}: run python docs/gen_cli.py"


@pytest.mark.parametrize("cut", ["- `--keep-tag ", "### snapstore unlock"])
def test_the_check_fails_when_an_option_or_command_is_removed(cut):
    text = DOC.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith(cut))
    gaps = missing(text.replace(line + "\n", ""))
    assert gaps, f"removing {line!r} went unnoticed"
    assert any(("--keep-tag" in g and "forget" in g) or g == "command `snapstore unlock`" for g in gaps)
