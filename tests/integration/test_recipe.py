"""The nightly recipe (docs/examples/), run as cron and systemd run it: on the default (encrypted)
store, with an environment as empty as cron's, the secrets from files named in the config file (cron)
or handed over by LoadCredential= (systemd)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from snapstore.cli import main
from snapstore.emulator import Emulator, generate_workspace
from snapstore.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
PASSWORD = "correct horse battery staple"
BIN = "/usr/local/bin/snapstore"


@pytest.fixture
def emu():
    with Emulator(generate_workspace(seed=5, bases=1, tables_per_base=2, records_per_table=30)) as e:
        yield e


def _snapstore_script(tmp_path: Path) -> Path:
    """What pip installs as /usr/local/bin/snapstore: this interpreter running snapstore.entry
    (with this checkout first on the path)."""
    p = tmp_path / "bin" / "snapstore"
    p.parent.mkdir(exist_ok=True)
    p.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                 "from snapstore.entry import run\nrun()\n")
    p.chmod(0o755)
    return p


def _setup(tmp_path: Path, emu: Emulator) -> tuple[Path, Path, Path, Path]:
    """A default (encrypted) store, the secrets in files, and a config file with the example's keys."""
    store, token, password = tmp_path / "store", tmp_path / "token", tmp_path / "password"
    token.write_text(emu.token + "\n")
    password.write_text(PASSWORD + "\n")
    for f in (token, password):
        f.chmod(0o600)
    r = CliRunner().invoke(main, ["init", "--store", str(store)], env={"SNAPSTORE_PASSWORD": PASSWORD,
                                                                        "SNAPSTORE_CONFIG": None})
    assert r.exit_code == 0, r.output
    assert Store.open(store, password=PASSWORD).encrypted  # the default store is the encrypted one
    example = tomllib.loads((EXAMPLES / "snapstore.toml").read_text())
    for k in ("store", "token_file", "password_file"):
        assert Path(example[k]).is_absolute(), k  # cron and systemd have no working folder to count on
    config = tmp_path / "snapstore.toml"
    config.write_text(f'store = "{store}"\ntoken_file = "{token}"\npassword_file = "{password}"\n'
                      f'api_url = "{emu.url}"\n\n[snapshot]\nquiet = true\n')
    return store, token, password, config


def _empty_env(tmp_path: Path, **extra: str) -> list[str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", *(f"{k}={v}" for k, v in extra.items())]


def test_cron_line_runs_on_the_default_store_with_crons_environment(tmp_path, emu):
    store, _token, _password, config = _setup(tmp_path, emu)
    line = next(x for x in (EXAMPLES / "snapstore.cron").read_text().splitlines()
                if x.strip() and not x.startswith("#"))
    command = line.split(None, 5)[5]  # after the five time fields
    assert BIN in command and "SNAPSTORE_CONFIG=/" in command
    command = command.replace(BIN, str(_snapstore_script(tmp_path)))
    command = re.sub(r"SNAPSTORE_CONFIG=\S+", f"SNAPSTORE_CONFIG={config}", command)
    r = subprocess.run([*_empty_env(tmp_path), "/bin/sh", "-c", command], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""  # -q: nothing on success (cron mails only failures)
    snaps = Store.open(store, password=PASSWORD).list_snapshots()
    assert len(snaps) == 1 and snaps[0].status == "complete"
    assert snaps[0].records == 60


def test_cron_line_without_the_password_file_says_how_in_one_line(tmp_path, emu):
    store, _token, password, config = _setup(tmp_path, emu)
    password.unlink()
    script = _snapstore_script(tmp_path)
    r = subprocess.run([*_empty_env(tmp_path, SNAPSTORE_CONFIG=str(config)), str(script), "snapshot", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "cannot read the password file" in r.stderr
    assert Store.open(store, password=PASSWORD).list_snapshots() == []


def _unit(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_unit_gets_both_secrets_from_load_credential(tmp_path, emu):
    """The service as systemd runs it: the credentials in a private folder (%d), the environment
    the unit sets and nothing else, ExecStart= with its absolute path."""
    store, token, password, config = _setup(tmp_path, emu)
    unit = _unit(EXAMPLES / "snapstore.service")
    creds = tmp_path / "credentials"
    creds.mkdir()
    for spec in unit["LoadCredential"]:
        name, src = spec.split(":", 1)
        assert Path(src).is_absolute()
        (creds / name).write_text({"token": token, "password": password}[name].read_text())
    assert {s.split(":")[0] for s in unit["LoadCredential"]} == {"token", "password"}
    env = dict(v.split("=", 1) for v in unit["Environment"])
    env = {k: v.replace("%d", str(creds)) for k, v in env.items()}
    env["SNAPSTORE_CONFIG"] = str(config)
    token.unlink()  # only the credentials folder holds them now
    password.unlink()
    for key in ("ExecStart", "ExecStartPost"):
        argv = shlex.split(unit[key][0])
        assert argv[0] == BIN
        argv[0] = str(_snapstore_script(tmp_path))
        r = subprocess.run([*_empty_env(tmp_path, **env), *argv], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (key, r.stderr)
    snaps = Store.open(store, password=PASSWORD).list_snapshots()
    assert len(snaps) == 1 and snaps[0].status == "complete"
    assert "OnFailure=notify-failure@%n.service" in (EXAMPLES / "snapstore.service").read_text()
    failure = _unit(EXAMPLES / "notify-failure@.service")
    assert failure["ExecStart"] and "/usr/local/bin/apprise" in failure["ExecStart"][0]


def test_config_file_refuses_the_secrets_themselves(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('password = "x"\n')
    r = CliRunner().invoke(main, ["log", "--config", str(cfg)], env={"SNAPSTORE_CONFIG": None})
    assert r.exit_code == 2 and "must not be stored in the config file" in r.output


def test_the_example_config_file_is_accepted_as_shipped():
    """Every key of docs/examples/snapstore.toml is one some command takes (a typo is exit 2)."""
    r = CliRunner().invoke(main, ["log", "--config", str(EXAMPLES / "snapstore.toml")],
                           env={"SNAPSTORE_CONFIG": None, "SNAPSTORE_STORE": None})
    assert r.exit_code == 10 and "no store at /var/lib/snapstore/store" in r.output
