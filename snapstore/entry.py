"""The console script's first code: install the stop handlers before anything heavy is imported.

Importing the verbs (DuckDB, Arrow, pyairtable) takes about a second; a SIGTERM in that second used
to kill the process with the default action (exit -15) and a Ctrl-C printed an import traceback."""

from __future__ import annotations

import os
import sys


def run() -> None:
    from snapstore import interrupts

    interrupts.install()
    try:
        import snapstore.cli  # noqa: F401 - every verb: the heavy imports happen here
        from snapstore.commands.base import run as run_command
    except BaseException:
        # a stop during a C extension's import surfaces as ImportError("initialization failed")
        if not interrupts.requested():
            raise
        sys.stderr.write("interrupted: nothing was started\n")
        sys.stderr.flush()
        os._exit(130)
    run_command()
