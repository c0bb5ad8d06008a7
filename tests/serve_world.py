"""A running ``snapstore serve`` over an encrypted store of the emulator's workspace, for the serve
tests: its schedule took the first snapshot, the emulator then changed, the CLI took the second."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from snapstore.emulator import Emulator, ScaledClock, generate_workspace
from tests.notify_receiver import receiver

ROOT = Path(__file__).resolve().parents[1]
SCALE = 50
LIMITS = f"--rate-limit-base {5 * SCALE} --rate-limit-token {50 * SCALE} --penalty {30 / SCALE} " \
         "--retry-backoff 0.001 --max-retries 1 --no-progress -q"
PASSWORD = "serve-test-password"
TOKEN = "serve-access-token-for-tests-0123"
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from snapstore.entry import run; run()", *args], env=env,
                          capture_output=True, text=True, timeout=600)


class World:
    def __init__(self, emu, store: Path, env: dict, url: str, hook, proc, log: Path, config: Path) -> None:
        self.emu, self.store, self.env, self.url, self.hook, self.proc = emu, store, env, url, hook, proc
        self.log, self.config = log, config
        self.session = requests.Session()
        r = self.session.get(f"{url}/?token={TOKEN}", timeout=30)
        assert r.status_code == 200, r.text

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.url + path, timeout=120)

    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.get("/").text).group(1)

    def wait_for(self, predicate, what: str, timeout: float = 240.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = predicate()
            if v:
                return v
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-3000:]}")

    def api(self, path: str, **params) -> dict:
        """An independent read of the emulator's Web API (plain HTTP, not snapstore's client)."""
        r = requests.get(f"{self.emu.url}/v0/{path}", params=params,
                         headers={"Authorization": f"Bearer {self.emu.token}"}, timeout=30)
        r.raise_for_status()
        return r.json()

    def records(self, base_id: str, table_id: str) -> dict[str, dict]:
        out, offset = {}, None
        while True:
            doc = self.api(f"{base_id}/{table_id}", returnFieldsByFieldId="true",
                           **({"offset": offset} if offset else {}))
            out.update({r["id"]: r["fields"] for r in doc["records"]})
            offset = doc.get("offset")
            if not offset:
                return out


@contextmanager
def serve_world(tmp: Path, *, allow_restore: bool = True):
    ws = generate_workspace(seed=21, bases=2, tables_per_base=2, records_per_table=30, attachment_share=0.0,
                            comment_share=0.2)
    with Emulator(ws, clock=ScaledClock(SCALE)) as emu, receiver() as hook:
        store = tmp / "store"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AIRTABLE_TOKEN": emu.token, "AIRTABLE_API_URL": emu.url,
               "SNAPSTORE_PASSWORD": PASSWORD, "SNAPSTORE_SERVE_TOKEN": TOKEN, "XDG_STATE_HOME": str(tmp / "state")}
        for k in ("SNAPSTORE_CONFIG", "AIRTABLE_TOKEN_FILE", "SNAPSTORE_STORE", "SNAPSTORE_PASSWORD_FILE"):
            env.pop(k, None)
        assert cli(env, "init", "--store", str(store)).returncode == 0
        config = tmp / "snapstore.toml"
        config.write_text(f'notify = ["{hook.url()}"]\n\n[serve]\nschedule = [\n'
                          f'  {{ run = "snapshot --comments {LIMITS}", every = "1d" }},\n'
                          f'  {{ run = "verify", every = "7d" }},\n]\n')
        port = free_port()
        log = tmp / "serve.log"
        args = [sys.executable, "-c", "from snapstore.entry import run; run()", "serve", "--store", str(store),
                "--config", str(config), "--listen", f"127.0.0.1:{port}", "--plan", "free"]
        if allow_restore:
            args.append("--allow-restore")
        with open(log, "wb") as logf:
            proc = subprocess.Popen(args, env=env, stdout=logf, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    requests.get(url + "/static/style.css", timeout=2)
                    break
                except requests.ConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(f"serve did not start: {log.read_text()}") from None
                    time.sleep(0.2)
            w = World(emu, store, env, url, hook, proc, log, config)
            # the schedule's missed runs (never run) run at start: the first snapshot, then verify
            w.wait_for(lambda: "exit 0" in w.get("/").text and w.get("/").text.count("exit 0") >= 2,
                       "the scheduled snapshot and verify")
            yield w
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            shutil.rmtree(tmp / "state", ignore_errors=True)
