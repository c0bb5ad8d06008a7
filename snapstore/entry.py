"""The console script's first code: install the stop handlers, and import the verbs with the stop
signals held.

Importing the library (DuckDB, Arrow, orjson, pyairtable) takes about a second, more on a loaded
machine. A SIGTERM in that second used to kill the process with the default action (exit -15); a
KeyboardInterrupt raised inside a C extension's initialisation surfaced as "ImportError:
initialization failed", and once (1 in 60 stopped exports) as a segfault. With the signals held
(pthread_sigmask), a stop that arrives during the imports is delivered right after them.

The verbs themselves import little (``--help`` and usage errors need none of the library); the
heavy imports of a verb that runs happen right before it, held the same way, in
snapstore/commands/base.py (``preload``)."""

from __future__ import annotations

import os
import sys


def run() -> None:
    from snapstore import interrupts

    interrupts.install()
    try:
        with interrupts.deferred():
            import snapstore.cli  # noqa: F401 - every verb (the library is imported by base.preload)
            from snapstore.commands.base import run as run_command
    except BaseException:
        if not interrupts.requested():
            raise
        sys.stderr.write("interrupted: nothing was started\n")
        sys.stderr.flush()
        os._exit(130)
    run_command()
