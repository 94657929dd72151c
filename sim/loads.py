"""The load models `router simulate --load-model` knows, by name (each documented in docs/simulator.md)."""

from __future__ import annotations

from router.errors import ConfigError
from sim.calls import CallMapping
from sim.workload import LoadModel, TaskMapping

LOAD_MODELS: dict[str, type[TaskMapping] | type[CallMapping]] = {"sessions": TaskMapping, "calls": CallMapping}
DEFAULT_LOAD_MODEL = "sessions"


def load_model(name: str, *, seed: int, offered_load: float) -> LoadModel:
    if name not in LOAD_MODELS:
        raise ConfigError(f"unknown load model {name!r}; known: {', '.join(LOAD_MODELS)}")
    return LOAD_MODELS[name](seed=seed, offered_load=offered_load)
