"""The simulated fleet: pools of slots per (model, account), read from a small TOML file."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.catalog import Catalog, load_catalog, parse_catalog
from router.errors import ConfigError

FLEETS_DIR = Path(__file__).parent / "fleets"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    model: str
    account: str
    slots: int
    speed: float = 1.0  # run-time multiplier on this model (1.0 = the task's base run time)
    quota_tokens_per_hour: int = 0  # 0: no quota, utilisation stays 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotSpec:
    slot_id: str
    model: str
    account: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fleet:
    name: str
    pools: tuple[PoolSpec, ...]
    catalog: Catalog  # the catalogue restricted to the fleet's models: what "rateable" means here

    @property
    def slot_count(self) -> int:
        return sum(p.slots for p in self.pools)

    def slots(self) -> list[SlotSpec]:
        """Slot ids sort in pool order, so id tie-breaks are the same for every policy."""
        out = []
        for i, pool in enumerate(self.pools):
            for j in range(pool.slots):
                out.append(SlotSpec(slot_id=f"s{i:02d}-{pool.model}-{j:03d}", model=pool.model, account=pool.account))
        return out

    def speed(self, model: str, account: str) -> float:
        for pool in self.pools:
            if pool.model == model and pool.account == account:
                return pool.speed
        raise KeyError((model, account))


MAX_SLOTS_PER_POOL = 10_000  # every slot is an object in the event loop: a typo like 100000000 must not hang
FLEET_KEYS = frozenset({"name", "catalog", "pool"})
POOL_KEYS = frozenset({"model", "account", "slots", "speed", "quota_tokens_per_hour"})


def load_fleet(path: str | Path) -> Fleet:
    """A fleet file by path, or by bare name from sim/fleets/ ("2-4-10" finds sim/fleets/2-4-10.toml)."""
    p = Path(path)
    if not p.exists() and (FLEETS_DIR / f"{path}.toml").exists():
        p = FLEETS_DIR / f"{path}.toml"
    try:
        doc = tomllib.loads(_read_text(p))
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read fleet {path}: {exc}") from exc
    unknown = sorted(set(doc) - FLEET_KEYS)
    if unknown:
        raise ConfigError(f"fleet {path}: unknown key {unknown[0]!r}; known: {', '.join(sorted(FLEET_KEYS))}")
    name = doc.get("name", p.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"fleet {path}: name must be a non-empty string, got {name!r}")
    return parse_fleet(doc, _fleet_catalog(doc.get("catalog"), p, name), name=name)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})") from exc


def _fleet_catalog(catalog_path: Any, fleet_path: Path, name: str) -> Catalog:
    """The packaged catalogue, or the fleet's own `catalog = "path"`, relative to the fleet file."""
    if catalog_path is None:
        return load_catalog()
    if not isinstance(catalog_path, str) or not catalog_path:
        raise ConfigError(f"fleet {name}: catalog must be a path string, got {catalog_path!r}")
    path = fleet_path.parent / catalog_path
    try:
        text = _read_text(path)  # read here: a binary catalogue must not reach the parser as a traceback
    except ConfigError as exc:
        raise ConfigError(f"fleet {name}: cannot read catalogue {path}: {exc}") from exc
    return parse_catalog(text, source=str(path))


def parse_fleet(doc: dict[str, Any], base: Catalog, *, name: str) -> Fleet:
    pools_doc = doc.get("pool")
    if not isinstance(pools_doc, list) or not pools_doc:
        raise ConfigError(f"fleet {name}: needs at least one [[pool]]")
    pools = tuple(_pool(entry, base, name) for entry in pools_doc)
    _check_unique(pools, name)
    models = {p.model: base.models[p.model] for p in pools}
    catalog = Catalog(models=models, layers=base.layers, prices_as_of=base.prices_as_of, source=base.source)
    return Fleet(name=name, pools=pools, catalog=catalog)


def _check_unique(pools: tuple[PoolSpec, ...], fleet: str) -> None:
    # speed and quota are looked up by (model, account): a second pool of the pair would be half ignored
    seen: set[tuple[str, str]] = set()
    for pool in pools:
        key = (pool.model, pool.account)
        if key in seen:
            raise ConfigError(f"fleet {fleet}: two pools of model {pool.model} on account {pool.account}; merge them")
        seen.add(key)


def _pool(entry: Any, base: Catalog, fleet: str) -> PoolSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"fleet {fleet}: each [[pool]] must be a table, got {entry!r}")
    model = entry.get("model")
    if not isinstance(model, str) or model not in base.models:
        known = ", ".join(sorted(base.models))
        raise ConfigError(f"fleet {fleet}: each [[pool]] needs a model from the catalogue ({known}), got {model!r}")
    where = f"fleet {fleet}: pool {model}"
    unknown = sorted(set(entry) - POOL_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(POOL_KEYS))}")
    account = entry.get("account", "default")
    if not isinstance(account, str) or not account:
        raise ConfigError(f"{where}: account must be a non-empty string, got {account!r}")
    return PoolSpec(
        model=model,
        account=account,
        slots=_slots(entry.get("slots"), where),
        speed=_speed(entry.get("speed", 1.0), where),
        quota_tokens_per_hour=_quota(entry.get("quota_tokens_per_hour", 0), where),
    )


def _slots(value: Any, where: str) -> int:
    # bool is an int in Python: `slots = true` must not quietly mean one slot
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SLOTS_PER_POOL:
        raise ConfigError(f"{where}: slots must be an integer from 1 to {MAX_SLOTS_PER_POOL:,}, got {value!r}")
    return value


def _speed(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{where}: speed must be a finite number > 0, got {value!r}")
    return float(value)


def _quota(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: quota_tokens_per_hour must be an integer >= 0 (0: no quota), got {value!r}")
    return value
