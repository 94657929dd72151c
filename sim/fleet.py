"""The simulated fleet: pools of slots per (model, account), read from a small TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.catalog import Catalog, load_catalog
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


def load_fleet(path: str | Path) -> Fleet:
    """A fleet file by path, or by bare name from sim/fleets/ ("2-4-10" finds sim/fleets/2-4-10.toml)."""
    p = Path(path)
    if not p.exists() and (FLEETS_DIR / f"{path}.toml").exists():
        p = FLEETS_DIR / f"{path}.toml"
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read fleet {path}: {exc}") from exc
    catalog_path = doc.get("catalog")
    base = load_catalog(p.parent / catalog_path if catalog_path else None)
    return parse_fleet(doc, base, name=str(doc.get("name", p.stem)))


def parse_fleet(doc: dict[str, Any], base: Catalog, *, name: str) -> Fleet:
    pools_doc = doc.get("pool")
    if not isinstance(pools_doc, list) or not pools_doc:
        raise ConfigError(f"fleet {name}: needs at least one [[pool]]")
    pools = tuple(_pool(entry, base, name) for entry in pools_doc)
    models = {p.model: base.models[p.model] for p in pools}
    catalog = Catalog(models=models, layers=base.layers, prices_as_of=base.prices_as_of, source=base.source)
    return Fleet(name=name, pools=pools, catalog=catalog)


def _pool(entry: Any, base: Catalog, fleet: str) -> PoolSpec:
    if not isinstance(entry, dict) or entry.get("model") not in base.models:
        raise ConfigError(f"fleet {fleet}: each [[pool]] needs a model from the catalogue, got {entry!r}")
    slots = entry.get("slots")
    if not isinstance(slots, int) or slots < 1:
        raise ConfigError(f"fleet {fleet}: pool {entry['model']} needs slots >= 1")
    return PoolSpec(
        model=entry["model"],
        account=str(entry.get("account", "default")),
        slots=slots,
        speed=float(entry.get("speed", 1.0)),
        quota_tokens_per_hour=int(entry.get("quota_tokens_per_hour", 0)),
    )
