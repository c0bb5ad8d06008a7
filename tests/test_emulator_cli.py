"""`snapstore emulator` prints lines a user pastes into the shell that runs snapstore: the two
variables the snapshot command reads and, with --time-scale, the client flags that match; a
snapshot run with exactly those works."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

from click.testing import CliRunner

from snapstore.cli import main
from snapstore.commands.emulator import client_setup


def test_setup_lines():
    lines = client_setup("http://127.0.0.1:9", "patA.b", rate_base=5, rate_token=50, penalty=30, scale=1.0)
    assert lines[1:] == ["export AIRTABLE_API_URL=http://127.0.0.1:9", "export AIRTABLE_TOKEN=patA.b"]
    lines = client_setup("http://127.0.0.1:9", "patA.b", rate_base=5, rate_token=50, penalty=30, scale=50)
    assert lines[-1] == "#   snapstore snapshot --rate-limit-base 250 --rate-limit-token 2500 --penalty 0.6"
    lines = client_setup("http://127.0.0.1:9", "patA.b", rate_base=10, rate_token=50, penalty=30, scale=1.0)
    assert "--rate-limit-base 10 " in lines[-1] and "limits are not Airtable's" in lines[-2]


def test_pasted_lines_run_a_snapshot(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", "from snapstore.cli import main; main()", "emulator", "--bases", "1", "--tables", "1", "--records", "30",
         "--attachment-share", "0", "--time-scale", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        env, flags = {}, None
        for line in proc.stdout:
            if line.startswith("export "):
                key, _, value = line[len("export "):].strip().partition("=")
                env[key] = shlex.split(value)[0]
            if line.startswith("#   snapstore snapshot "):
                flags = shlex.split(line[len("#   snapstore snapshot "):])
                break
        assert set(env) == {"AIRTABLE_API_URL", "AIRTABLE_TOKEN"} and flags
        r = CliRunner().invoke(main, ["snapshot", "--store", str(tmp_path / "s"), "--no-progress", *flags],
                               env={**env, "AIRTABLE_TOKEN_FILE": None, "SNAPSTORE_CONFIG": None})
        assert r.exit_code == 0, r.output
        assert "30" in CliRunner().invoke(main, ["log", "--store", str(tmp_path / "s")]).output
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_rate_model_switch_from_the_command_line():
    """`--rate-model bucket --burst 3`: three requests back to back pass, the fourth is a 429 (the
    bucket refills at --rate-limit-base 1 a second); `--rate-model window` refuses the second."""
    import requests

    for model, passing in (("bucket", 3), ("window", 1)):
        proc = subprocess.Popen(
            [sys.executable, "-c", "from snapstore.cli import main; main()", "emulator", "--bases", "1", "--tables",
             "1", "--records", "5", "--rate-model", model, "--burst", "3", "--rate-limit-base", "1",
             "--latency", "uniform:0:0.001", "--time-scale", "0.1"],  # a slow clock: 1 s lasts 10 real ones
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            env = {}
            for line in proc.stdout:
                if line.startswith("export "):
                    key, _, value = line[len("export "):].strip().partition("=")
                    env[key] = shlex.split(value)[0]
                if len(env) == 2:
                    break
            h = {"Authorization": f"Bearer {env['AIRTABLE_TOKEN']}"}
            base = requests.get(f"{env['AIRTABLE_API_URL']}/v0/meta/bases", headers=h, timeout=10).json()["bases"][0]
            codes = [requests.get(f"{env['AIRTABLE_API_URL']}/v0/meta/bases/{base['id']}/tables", headers=h,
                                  timeout=10).status_code for _ in range(passing + 1)]
            assert codes == [200] * passing + [429], (model, codes)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
