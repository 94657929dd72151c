"""The budgets file (`ROUTER_BUDGETS`): read and checked against the catalogue, one clear line on error."""

from __future__ import annotations

import tomllib
from pathlib import Path

from router.budgets import Budget, parse_budgets
from router.catalog import Catalog
from router.errors import ConfigError


def load_budgets(path: str | None, catalog: Catalog) -> tuple[Budget, ...]:
    """The budgets in `path` (none when unset); ConfigError naming the file and what is wrong."""
    if not path:
        return ()
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"ROUTER_BUDGETS={path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"ROUTER_BUDGETS={path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"ROUTER_BUDGETS={path}: not valid TOML ({exc})") from None
    try:
        return parse_budgets(doc, known_models=catalog.models)
    except ConfigError as exc:
        raise ConfigError(f"ROUTER_BUDGETS={path}: {str(exc).removeprefix('budgets: ')}") from None
