"""The model catalogue: tiers, capabilities, prices and per-layer token estimates.

Prices change often, so they are data (a TOML file), never constants in code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from router.errors import CatalogError

PREMIUM_TIER: Final = 3
MAX_CAPABILITY: Final = 10
DEFAULT_LAYER: Final = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    model_id: str
    tier: int
    provider: str
    capabilities: Mapping[str, int]
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    price_source: str = ""

    @property
    def is_premium(self) -> bool:
        return self.tier >= PREMIUM_TIER

    def shortfalls(self, requires: Mapping[str, int]) -> dict[str, tuple[int, int]]:
        """Capabilities this model lacks for `requires`: name -> (needed, has)."""
        return {
            name: (needed, self.capabilities.get(name, 0))
            for name, needed in requires.items()
            if self.capabilities.get(name, 0) < needed
        }

    def meets(self, requires: Mapping[str, int]) -> bool:
        return all(self.capabilities.get(name, 0) >= needed for name, needed in requires.items())

    def cost_usd(self, *, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok) / 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerEstimate:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Catalog:
    models: Mapping[str, Model]
    layers: Mapping[str, LayerEstimate] = field(default_factory=dict)
    prices_as_of: str = ""
    source: str = "<memory>"

    # requires -> (rateable models, their ids): a fleet's tasks share few distinct requirement sets
    _rateable_cache: dict[frozenset[tuple[str, int]], tuple[tuple[Model, ...], frozenset[str]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.models:
            raise CatalogError(f"{self.source}: the catalogue lists no models")

    @property
    def capability_names(self) -> frozenset[str]:
        return frozenset(name for m in self.models.values() for name in m.capabilities)

    def rateable(self, requires: Mapping[str, int]) -> tuple[Model, ...]:
        """Models that meet every requirement (step 1 of POLICY.md), cheapest tier first."""
        return self._rateable(requires)[0]

    def rateable_ids(self, requires: Mapping[str, int]) -> frozenset[str]:
        """The ids of `rateable(requires)`: one set shared by every task with these requirements."""
        return self._rateable(requires)[1]

    def rateable_with_ids(self, requires: Mapping[str, int]) -> tuple[tuple[Model, ...], frozenset[str]]:
        """`rateable(requires)` and `rateable_ids(requires)` in one look-up (building the cache key
        costs more than the rest: callers that need both ask once)."""
        return self._rateable(requires)

    def _rateable(self, requires: Mapping[str, int]) -> tuple[tuple[Model, ...], frozenset[str]]:
        key = frozenset(requires.items())
        cached = self._rateable_cache.get(key)
        if cached is None:
            found = (m for m in self.models.values() if m.meets(requires))
            models = tuple(sorted(found, key=lambda m: (m.tier, m.model_id)))
            cached = (models, frozenset(m.model_id for m in models))
            if len(self._rateable_cache) < 4096:  # bounded: requirement sets come from outside
                self._rateable_cache[key] = cached
        return cached

    def unreachable(self, requires: Mapping[str, int]) -> dict[str, int]:
        """Requirements no single model reaches on its own: name -> best level on offer."""
        best = {name: max(m.capabilities.get(name, 0) for m in self.models.values()) for name in requires}
        return {name: best[name] for name, needed in requires.items() if best[name] < needed}

    def estimate(self, layer: str) -> LayerEstimate:
        return (
            self.layers.get(layer) or self.layers.get(DEFAULT_LAYER) or LayerEstimate(input_tokens=0, output_tokens=0)
        )


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load a TOML catalogue; `None` means the packaged default."""
    if path is None:
        text = resources.files("router").joinpath("data/catalog.toml").read_text(encoding="utf-8")
        return parse_catalog(text, source="packaged catalog.toml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read catalogue {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(f"cannot read catalogue {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_catalog(text, source=str(path))


def parse_catalog(text: str, *, source: str = "<text>") -> Catalog:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML: {exc}") from exc
    models_doc = _table(doc, "models", source)
    models = {mid: _parse_model(mid, entry, source) for mid, entry in models_doc.items()}
    layers_doc = doc.get("layers", {})
    if not isinstance(layers_doc, dict):
        raise CatalogError(f"{source}: [layers] must be a table")
    layers = {name: _parse_layer(name, entry, source) for name, entry in layers_doc.items()}
    return Catalog(models=models, layers=layers, prices_as_of=str(doc.get("prices_as_of", "")), source=source)


def _table(doc: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = doc.get(key)
    if not isinstance(value, dict) or not value:
        raise CatalogError(f"{source}: missing or empty [{key}] table")
    return value


def _parse_model(model_id: str, entry: Any, source: str) -> Model:
    where = f"{source}: model {model_id!r}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be a table")
    tier = _int_in(entry, "tier", 1, PREMIUM_TIER, where)
    caps = entry.get("capabilities", {})
    if not isinstance(caps, dict):
        raise CatalogError(f"{where}: capabilities must be a table of name = 0..10")
    for name, level in caps.items():
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= MAX_CAPABILITY:
            raise CatalogError(f"{where}: capability {name!r} must be an integer 0..10, got {level!r}")
    return Model(
        model_id=model_id,
        tier=tier,
        provider=str(entry.get("provider", "")),
        capabilities=dict(caps),
        input_usd_per_mtok=_price(entry, "input_usd_per_mtok", where),
        output_usd_per_mtok=_price(entry, "output_usd_per_mtok", where),
        price_source=str(entry.get("price_source", "")),
    )


def _parse_layer(name: str, entry: Any, source: str) -> LayerEstimate:
    where = f"{source}: layer {name!r}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: must be a table")
    return LayerEstimate(
        input_tokens=_int_in(entry, "input_tokens", 0, 10**9, where),
        output_tokens=_int_in(entry, "output_tokens", 0, 10**9, where),
    )


def _int_in(entry: Mapping[str, Any], key: str, low: int, high: int, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CatalogError(f"{where}: {key} must be an integer {low}..{high}, got {value!r}")
    return value


def _price(entry: Mapping[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    # `not 0 <= value < inf` also refuses NaN, which TOML allows (`nan`) and `value < 0` lets through
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
        raise CatalogError(f"{where}: {key} must be a finite non-negative number, got {value!r}")
    return float(value)
