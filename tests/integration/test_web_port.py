"""`router web` listens where it is told: --port, else $PORT (set per process by honcho and by
Procfile hosts), else 8000; and the Procfile's `web` line starts it on $PORT."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.cli import assert_usage_error, run_router
from support.ports import unused_port
from support.processes import REPO, wait_for

from router.errors import ConfigError
from worker.commands.web import DEFAULT_PORT, listen_port_from


def test_the_flag_wins_over_port_and_port_over_the_default() -> None:
    assert listen_port_from(9001, {"PORT": "5000"}) == 9001
    assert listen_port_from(None, {"PORT": "5000"}) == 5000
    assert listen_port_from(None, {}) == DEFAULT_PORT == 8000


@pytest.mark.parametrize(("value", "message"), [("web", "not an integer"), ("70000", "at most 65535"), ("-1", "")])
def test_a_bad_port_is_a_config_error_naming_port(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^PORT '{value}' .*{message}"):
        listen_port_from(None, {"PORT": value})


@pytest.mark.parametrize("value", ["web", "70000", " ", "8000.5"])
def test_router_web_refuses_a_bad_port_with_exit_2(value: str, tmp_path: Path) -> None:
    result = run_router("web", env={"PORT": value, "DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}"})
    assert_usage_error(result, "router web: PORT ")


def _listening(port: int) -> bool:
    """Whether an HTTP server answers on the port (a 503 from /healthz names a backend that is down:
    it still answered)."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
    except urllib.error.HTTPError:
        pass
    except OSError:
        return False
    return True


def _procfile_command(name: str) -> str:
    lines = (REPO / "Procfile").read_text().splitlines()
    [command] = [line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{name}:")]
    return command


@pytest.mark.integration
def test_the_procfile_web_process_listens_on_port(redis_url: str, tmp_path: Path) -> None:
    """The Procfile's own `web` line, run by a shell as honcho runs it, with PORT set for it."""
    listen = unused_port()
    venv_bin = str(Path(sys.executable).parent)  # where `router` is installed
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "PORT": str(listen),
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'd.sqlite3'}",
    }
    with open(tmp_path / "web.log", "wb") as log:
        proc = subprocess.Popen(["sh", "-c", f"exec {_procfile_command('web')}"], env=env, stdout=log, stderr=log)
    try:
        wait_for(lambda: _listening(listen) or proc.poll() is not None, what=f"router web on port {listen}")
        assert proc.poll() is None, (tmp_path / "web.log").read_text()
    finally:
        proc.kill()
        proc.wait(timeout=10)
