"""Running the `router` console script as ops do, in a subprocess, and checking its refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_router(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`router ARGS...` with `env` over this process's environment; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Refused the way bad input must be: exit status 2, the message on stderr, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
