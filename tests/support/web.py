"""`router web` as a real child process on a free port, for tests that read it over HTTP."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from support.processes import RouterProcess, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_web(env: dict[str, str], log_path: Path) -> tuple[RouterProcess, str]:
    """Start `router web` with `env`; returns the process and its base URL once /healthz answers."""
    port = free_port()
    proc = RouterProcess(["web", "--host", "127.0.0.1", "--port", str(port)], env=env, log_path=log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/healthz") or proc.proc.poll() is not None, what="router web to answer")
        assert proc.proc.poll() is None, proc.log()
    except BaseException:
        proc.stop()
        raise
    return proc, base


def get_json(url: str) -> tuple[int, Any]:
    """Status and JSON body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), orjson.loads(exc.read())
