"""`router simulate`: options, the run over scenarios, and the outputs (table, goals, JSON, PNG)."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from router.engine import RouterConfig
from router.errors import ConfigError
from sim.fleet import load_fleet
from sim.policies import POLICIES
from sim.report import goals, goals_text, scenario_json, table, write_json
from sim.run import PolicySpec, ScenarioResult, run_scenario
from sim.traces import TRACES
from sim.workload import TaskMapping

DEFAULT_FLEETS = ("2-4-10", "4-4-4")
DEFAULT_TRACES = ("azure-code",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trace", action="append", choices=sorted(TRACES), help="trace to replay (repeatable; default azure-code)"
    )
    p.add_argument(
        "--fleet", action="append", help="fleet TOML path or name in sim/fleets (repeatable; default 2-4-10 and 4-4-4)"
    )
    p.add_argument("--policies", default=",".join(POLICIES), help=f"comma-separated, from {', '.join(POLICIES)}")
    p.add_argument("--limit", type=int, help="replay only the first N rows of each trace")
    p.add_argument("--seed", type=int, default=TaskMapping().seed, help="seed of the row-to-task mapping")
    p.add_argument(
        "--load", type=float, default=TaskMapping().offered_load, help="offered load the arrivals are rescaled to"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a RouterConfig setting for the router policy"
    )
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", help="also run the router once per value of one setting")
    p.add_argument("--json", type=Path, help="write every scenario's figures to this JSON file")
    p.add_argument("--plot", type=Path, help="write the cost / waiting plot to this PNG file")
    p.add_argument("--markdown", action="store_true", help="print Markdown tables instead of aligned text")
    p.add_argument("--traces-dir", type=Path, help="read traces from here instead of sim/traces")


def run(args: argparse.Namespace) -> int:
    base_config = _config(RouterConfig(), args.set)
    specs = _policies(args.policies, base_config)
    specs += _sweep(args.sweep, base_config)
    mapping = TaskMapping(seed=args.seed, offered_load=args.load)
    results: list[ScenarioResult] = []
    for trace in args.trace or DEFAULT_TRACES:
        for fleet_name in args.fleet or DEFAULT_FLEETS:
            fleet = load_fleet(fleet_name)
            result = run_scenario(trace, fleet, specs, mapping=mapping, limit=args.limit, traces_dir=args.traces_dir)
            results.append(result)
            heading = f"{trace} on fleet {fleet.name}: {result.tasks} tasks"
            print(f"\n## {heading}, offered load {mapping.offered_load}, seed {mapping.seed}\n")
            print(table(result.metrics, markdown=args.markdown))
            checked = goals(result.metrics)
            if checked:
                print("\nrouter against fifo-capable (goals):")
                print(goals_text(checked))
    settings = {f.name: getattr(base_config, f.name) for f in fields(base_config)}
    if args.json:
        write_json(args.json, {"scenarios": [scenario_json(r, settings=settings) for r in results]})
        print(f"\nwrote {args.json}")
    if args.plot:
        from sim.plot import plot  # matplotlib loads only when a plot is asked for

        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _policies(text: str, config: RouterConfig) -> list[PolicySpec]:
    specs = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        if name not in POLICIES:
            raise ConfigError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}")
        specs.append(PolicySpec(name=name, config=config if name == "router" else None))
    return specs


def _sweep(text: str | None, config: RouterConfig) -> list[PolicySpec]:
    if not text:
        return []
    key, _, values = text.partition("=")
    return [
        PolicySpec(name=f"router[{key}={v}]", config=_config(config, [f"{key}={v}"])) for v in values.split(",") if v
    ]


def _config(config: RouterConfig, assignments: list[str]) -> RouterConfig:
    known = {f.name: f for f in fields(RouterConfig)}
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        changes[key] = _parse(raw, getattr(config, key))
    return replace(config, **changes)


def _parse(raw: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if isinstance(current, int):
            return int(raw)
        if isinstance(current, float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{raw!r} is not a valid {type(current).__name__}") from None
    return raw
