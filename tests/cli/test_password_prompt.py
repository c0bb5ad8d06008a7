"""The password prompt on a terminal: the real console script under a pseudo-terminal, with no
password in the environment. ``init`` asks twice and refuses a mismatch in one line; a later command
asks once, however many times it opens the store; a wrong answer is exit 12; what is typed never
shows on the terminal. Every read has a deadline, so a prompt that never comes (or a command that
waits for more input) fails the test instead of hanging it."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import sysconfig
from pathlib import Path

import pytest

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from snapstore.errors import EXIT_OK, EXIT_USAGE, EXIT_WRONG_PASSWORD

pytestmark = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs a pseudo-terminal and pidfd (Linux)")

PASSWORD = "tty secret 4242"
DEADLINE = 90.0  # seconds for one command under a loaded machine: a ceiling, not a measurement


def console_script() -> list[str]:
    """The installed `snapstore` script of this interpreter, else the same entry point through -c."""
    for d in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        script = Path(d) / "snapstore"
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    return [sys.executable, "-c", "from snapstore.entry import run; run()"]


class Terminal:
    """One command whose stdin, stdout and stderr are a pseudo-terminal, its controlling terminal
    (pty.fork: getpass opens /dev/tty, which must be this one and never the test runner's)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        argv = [*console_script(), *args]
        pid, fd = pty.fork()
        if pid == 0:  # the child: nothing but exec
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.pidfd = os.pidfd_open(pid)
        self.out = b""
        self.eof = False
        self.code: int | None = None

    def _read(self, timeout: float) -> bool:
        """Read what is there within ``timeout`` seconds; False when nothing came in time."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: every holder of the terminal's other side has closed it
            chunk = b""
        if not chunk:
            self.eof = True
        self.out += chunk
        return True

    def expect(self, text: str, timeout: float = DEADLINE) -> None:
        """Wait until ``text`` has appeared since the last expect."""
        want = text.encode()
        start = getattr(self, "_mark", 0)
        while want not in self.out[start:]:
            if self.eof or not self._read(timeout):
                self.kill()
                pytest.fail(f"{text!r} never appeared on the terminal; it shows:\n{self.text()}")
        self._mark = self.out.index(want, start) + len(want)

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def finish(self, timeout: float = DEADLINE) -> int:
        """Everything up to the end of the output, then the exit code."""
        while not self.eof:
            if not self._read(timeout):
                self.kill()
                pytest.fail(f"the command did not finish; the terminal shows:\n{self.text()}")
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        if not ready:
            self.kill()
            pytest.fail("the command closed its terminal but did not exit")
        self._close(os.waitpid(self.pid, 0)[1])
        return self.code

    def kill(self) -> None:
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            self._close(os.waitpid(self.pid, 0)[1])

    def _close(self, status: int) -> None:
        self.code = os.waitstatus_to_exitcode(status)
        os.close(self.fd)
        os.close(self.pidfd)

    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def lines_after_prompts(self) -> list[str]:
        """The lines the command printed after the last prompt's answer."""
        return [x for x in self.text()[getattr(self, "_mark", 0):].splitlines() if x.strip()]


@pytest.fixture
def tty_env(tmp_path) -> dict[str, str]:
    """The environment without any password (the suite's conftest sets SNAPSTORE_PASSWORD)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SNAPSTORE_PASSWORD", "SNAPSTORE_PASSWORD_FILE", "SNAPSTORE_NEW_PASSWORD", "SNAPSTORE_CONFIG",
                        "SNAPSTORE_STORE", "AIRTABLE_TOKEN_FILE")}
    env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb", SNAPSTORE_CACHE=str(tmp_path / "cache"))
    return env


def run(args: list[str], env: dict, answers: list[str], prompt: str = "password for") -> Terminal:
    """Run a command, answer each prompt in turn, and read it to its end."""
    t = Terminal(args, env)
    for answer in answers:
        t.expect(prompt)
        t.expect(": ")
        t.type(answer)
    t.finish()
    return t


def test_init_asks_twice_then_each_command_once_and_never_echoes(tmp_path, tty_env):
    store = str(tmp_path / "store")
    transcripts = []

    # a mismatch: one line, exit 2, no store
    t = run(["init", "--store", store], tty_env, [PASSWORD, PASSWORD + "x"], prompt="new password for")
    transcripts.append(t.text())
    assert t.code == EXIT_USAGE, t.text()
    assert t.text().count("new password for") == 2 and "(again): " in t.text()
    assert t.lines_after_prompts() == ["Error: the two passwords differ; nothing was changed"], t.text()
    assert not Path(store).exists() or not any(Path(store).iterdir())

    # the same answer twice: an encrypted store
    t = run(["init", "--store", store], tty_env, [PASSWORD, PASSWORD], prompt="new password for")
    transcripts.append(t.text())
    assert t.code == EXIT_OK, t.text()
    assert t.text().count("new password for") == 2
    assert t.lines_after_prompts()[-1].startswith("created an encrypted store")

    # a later command asks once
    t = run(["log", "--store", store], tty_env, [PASSWORD])
    transcripts.append(t.text())
    assert t.code == EXIT_OK, t.text()
    assert t.text().count("password for") == 1 and "no snapshots yet" in t.text()

    # a wrong answer: exit 12, one line, asked once (no second chance that a script could hang on)
    t = run(["log", "--store", store], tty_env, ["not " + PASSWORD])
    transcripts.append(t.text())
    assert t.code == EXIT_WRONG_PASSWORD, t.text()
    assert t.text().count("password for") == 1
    (line,) = t.lines_after_prompts()
    assert line.startswith("Error: wrong password"), t.text()

    # a snapshot opens the store more than once (its feed hints, then to write): still one question
    ws = generate_workspace(seed=9, bases=1, tables_per_base=1, records_per_table=5, attachment_share=0)
    with Emulator(ws, clock=ScaledClock(50)) as emu:
        env = dict(tty_env, AIRTABLE_TOKEN=emu.token, AIRTABLE_API_URL=emu.url)
        t = run(["snapshot", "--store", store, "--rate-limit-base", "250", "--rate-limit-token", "2500",
                 "--penalty", "0.6", "--no-progress", "-q"], env, [PASSWORD])
    transcripts.append(t.text())
    assert t.code == EXIT_OK, t.text()
    assert t.text().count("password for") == 1 and t.lines_after_prompts() == [], t.text()
    t = run(["log", "--store", store, "--json"], tty_env, [PASSWORD])
    transcripts.append(t.text())
    assert t.code == EXIT_OK and '"records": 5' in t.text(), t.text()

    # what was typed never reached the terminal's output
    for text in transcripts:
        assert PASSWORD not in text and "tty secret" not in text, text


def test_key_commands_on_a_plain_store_ask_nothing(tmp_path, tty_env):
    """A plain store has no keys: `key add` says so in one line, before asking for any password."""
    store = str(tmp_path / "plain")
    t = run(["init", "--store", store, "--no-encryption"], tty_env, [])
    assert t.code == EXIT_OK and "created a plain store" in t.text(), t.text()
    for args in (["key", "add"], ["key", "list"], ["key", "passwd"]):
        t = run([*args, "--store", store], tty_env, [])
        assert t.code == EXIT_USAGE, (args, t.text())
        assert "password" not in t.text(), (args, t.text())
        assert [x for x in t.text().splitlines() if x.strip()] == [
            f"Error: the store at {store} is not encrypted: it has no keys"], t.text()
