"""Output files (--json, --plot): checked before a run so a bad path fails in a second, not after it."""

from __future__ import annotations

import os
from pathlib import Path

from router.errors import ConfigError


def check_output(path: Path, option: str) -> None:
    """`path` must be a file this process can create or replace; missing parent directories are created later."""
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory")
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise ConfigError(f"{option} {path}: {ancestor} is not a directory")
    target = path if path.exists() else ancestor
    if not os.access(target, os.W_OK):
        raise ConfigError(f"{option} {path}: no permission to write {target}")


def prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the directory of {path}: {exc.strerror or exc}") from exc


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
