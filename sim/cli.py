"""`router simulate`: options, the run over scenarios, and the outputs (table, goals, JSON, PNG)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from router.budgets import Budget
from router.catalog import Catalog
from router.engine import RouterConfig
from router.errors import ConfigError
from router.quality import GateMode
from sim.budgets import UNBUDGETED, budget_figures, budgets_text
from sim.failures import MISRATED_BY
from sim.fleet import Fleet, load_fleet
from sim.loads import DEFAULT_LOAD_MODEL, LOAD_MODELS, load_model
from sim.outputs import check_output
from sim.policies import ORACLE, POLICIES
from sim.report import goals, goals_text, outcome_goals, scenario_json, table, write_json
from sim.run import FailureSpec, PolicySpec, ScenarioResult, run_scenario
from sim.traces import TRACES
from sim.workload import TaskMapping

DEFAULT_FLEETS = ("2-4-10", "4-4-4")
BudgetLoader = Callable[[str, Catalog], tuple[Budget, ...]]  # (path, catalogue) -> budgets, or ConfigError
DEFAULT_TRACES = ("azure-code",)
DEFAULT_SEED = TaskMapping().seed
DEFAULT_LOAD = TaskMapping().offered_load
# Offered load bounds: outside them the arrival rescaling under- or overflows a float (a load of 1e-320
# divides by zero); 1,000x the fleet's capacity is already "everything arrives at once".
MIN_LOAD, MAX_LOAD = 0.001, 1000.0
# The rules the worker applies to the same settings (worker/settings.py `_check`), so the simulated
# router runs only with settings a real one would accept. The worker has no rule for the last two;
# router/engine.py needs a timeout it can turn into milliseconds and a count it can trim a dict to.
POSITIVE_SETTINGS = frozenset({"ev_window", "stale_after_s", "assignment_timeout_s"})
NON_NEGATIVE_SETTINGS = frozenset({"ev_rank_points", "ageing_points_per_service_time", "remember_assigned"})


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def offered_load(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not MIN_LOAD <= value <= MAX_LOAD:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number from {MIN_LOAD:g} to {MAX_LOAD:g}, got {raw}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trace", action="append", choices=sorted(TRACES), help="trace to replay (repeatable; default azure-code)"
    )
    p.add_argument(
        "--fleet", action="append", help="fleet TOML path or name in sim/fleets (repeatable; default 2-4-10 and 4-4-4)"
    )
    p.add_argument(
        "--policies",
        help=f"comma-separated, from {', '.join(POLICIES)} and {ORACLE} (default: the five; --reference adds {ORACLE})",
    )
    p.add_argument(
        "--load-model",
        action="append",
        choices=list(LOAD_MODELS),
        help=f"how trace rows become tasks (repeatable; default {DEFAULT_LOAD_MODEL}; see docs/simulator.md)",
    )
    p.add_argument("--limit", type=positive_int, help="replay only the first N rows of each trace")
    p.add_argument(
        "--seed",
        type=int,
        action="append",
        help=f"seed of the row-to-task mapping (repeatable; default {DEFAULT_SEED})",
    )
    p.add_argument(
        "--load",
        type=offered_load,
        action="append",
        help=f"offered load to rescale the arrivals to ({MIN_LOAD:g}-{MAX_LOAD:g}; repeatable; default {DEFAULT_LOAD})",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a RouterConfig setting for the router policy"
    )
    p.add_argument("--sweep", metavar="KEY=V1,V2,...", help="also run the router once per value of one setting")
    p.add_argument("--json", type=Path, help="write every scenario's figures to this JSON file")
    p.add_argument(
        "--plot", type=Path, help="write the cost / waiting plot to this file (.png, .svg or .pdf; no extension: PNG)"
    )
    p.add_argument("--markdown", action="store_true", help="print Markdown tables instead of aligned text")
    p.add_argument("--traces-dir", type=Path, help="read traces from here instead of sim/traces")
    p.add_argument(
        "--reference",
        action="store_true",
        help="the reference runs: both load models, both reference fleets, three traces, loads 0.5/0.75/0.9,"
        " seeds 7/8/9 (each narrowed by its own option); a Markdown + JSON report and a Pareto plot per load model",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        default=Path("bench/results"),
        help="where --reference writes simulate-reference.md/.json and simulate-pareto-<load model>.png",
    )
    p.add_argument("--jobs", type=positive_int, default=1, help="--reference: runs in this many processes")
    p.add_argument(
        "--failures",
        action="store_true",
        help="attempts can fail (the seeded failure model, docs/simulator.md); policies escalate and retry",
    )
    p.add_argument(
        "--misrated",
        metavar="MODEL",
        help=f"with --failures: the catalogue rates MODEL {MISRATED_BY} points above how it behaves",
    )
    p.add_argument(
        "--quality-gate",
        choices=[m.value for m in GateMode],
        help="the router's quality gate (ROUTER_QUALITY_GATE; default shadow)",
    )
    p.add_argument(
        "--budgets",
        metavar="FILE",
        help="a budgets TOML (as ROUTER_BUDGETS) for the router policy, which is also run without it",
    )


def run(args: argparse.Namespace) -> int:
    base_config = _config(RouterConfig(), args.set)
    if args.quality_gate is not None:
        base_config = replace(base_config, quality_gate=args.quality_gate)
    if args.reference:
        if args.failures or args.budgets:
            raise ConfigError("--reference runs without --failures and --budgets (run those scenarios directly)")
        from sim.reference import run_reference

        policies = ",".join((*POLICIES, ORACLE)) if args.policies is None else args.policies
        specs = _policies(policies, base_config) + _sweep(args.sweep, base_config)
        _check_unique_names(specs)
        return run_reference(args, specs, base_config)
    specs = _policies(",".join(POLICIES) if args.policies is None else args.policies, base_config)
    specs += _sweep(args.sweep, base_config)
    _check_unique_names(specs)
    _check_outputs(args)  # before the run: a bad path should not cost the minutes a run takes
    fleets = [load_fleet(name) for name in args.fleet or DEFAULT_FLEETS]  # all checked before the first run
    failures = _failures(args, fleets)
    budgets = {fleet.name: _budgets(args, fleet) for fleet in fleets}
    results: list[ScenarioResult] = []
    budget_docs: list[list[dict[str, object]]] = []
    for model_name in args.load_model or [DEFAULT_LOAD_MODEL]:
        for load in args.load or [DEFAULT_LOAD]:
            for seed in args.seed or [DEFAULT_SEED]:
                mapping = load_model(model_name, seed=seed, offered_load=load)
                for trace in args.trace or DEFAULT_TRACES:
                    for fleet in fleets:
                        result = run_scenario(
                            trace,
                            fleet,
                            _with_budgets(specs, budgets[fleet.name]),
                            mapping=mapping,
                            limit=args.limit,
                            traces_dir=args.traces_dir,
                            failures=failures,
                        )
                        results.append(result)
                        _print_result(result, markdown=args.markdown)
                        budget_docs.append(_print_budgets(result, fleet, budgets[fleet.name]))
    settings = {f.name: getattr(base_config, f.name) for f in fields(base_config)}
    if args.json:
        scenarios = [
            {**scenario_json(r, settings=settings), **({"budgets": b} if args.budgets else {})}
            for r, b in zip(results, budget_docs, strict=True)
        ]
        write_json(args.json, {"scenarios": scenarios})
        print(f"\nwrote {args.json}")
    if args.plot:
        from sim.plot import plot  # matplotlib loads only when a plot is asked for

        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _print_result(result: ScenarioResult, *, markdown: bool) -> None:
    heading = f"{result.trace} on fleet {result.fleet}: {result.tasks} tasks, load model {result.load_model}"
    print(f"\n## {heading}, offered load {result.offered_load}, seed {result.seed}\n")
    print(table(result.metrics, markdown=markdown, outcomes=result.failures is not None))
    checked = goals(result.metrics)
    if checked:
        print("\nrouter against fifo-capable (goals):")
        print(goals_text(checked))
    if result.failures is not None and (outcome_checked := outcome_goals(result.metrics)):
        print("\nrouter against premium and fifo-capable, attempts that can fail (goals):")
        print(goals_text(outcome_checked))


def _failures(args: argparse.Namespace, fleets: list[Fleet]) -> FailureSpec | None:
    if args.misrated is not None:
        if not args.failures:
            raise ConfigError("--misrated needs --failures (a mis-rated model only shows when attempts can fail)")
        for fleet in fleets:
            if args.misrated not in fleet.catalog.models:
                known = ", ".join(sorted(fleet.catalog.models))
                raise ConfigError(f"--misrated {args.misrated}: not a model of fleet {fleet.name} ({known})")
    return FailureSpec(misrated=args.misrated) if args.failures else None


def _budgets(args: argparse.Namespace, fleet: Fleet) -> tuple[Budget, ...]:
    """The budgets file checked against the fleet's catalogue by the loader the command was given
    (`load_budgets`: the worker's own, worker/budget_file.py, so a file is judged as the worker does)."""
    if args.budgets is None:
        return ()
    load: BudgetLoader | None = getattr(args, "load_budgets", None)
    if load is None:
        raise ConfigError("--budgets: this command was set up without a budgets loader")
    try:
        return load(args.budgets, fleet.catalog)
    except ConfigError as exc:
        raise ConfigError(f"--budgets {str(exc).removeprefix('ROUTER_BUDGETS=')}") from None


def _with_budgets(specs: list[PolicySpec], budgets: tuple[Budget, ...]) -> list[PolicySpec]:
    """The router policy gets the budgets; the same router without them runs beside it to compare."""
    if not budgets:
        return specs
    out = []
    for spec in specs:
        if spec.name == "router":
            out += [replace(spec, budgets=budgets), PolicySpec(name=UNBUDGETED, config=spec.config)]
        else:
            out.append(spec)
    return out


def _print_budgets(result: ScenarioResult, fleet: Fleet, budgets: tuple[Budget, ...]) -> list[dict[str, object]]:
    by_name = {o.policy: o for o in result.outcomes}
    if not budgets or "router" not in by_name:
        return []
    figures = budget_figures(budgets, fleet.catalog, by_name["router"], by_name[UNBUDGETED])
    print()
    print(budgets_text(figures))
    return [f.to_json() for f in figures]


def _check_outputs(args: argparse.Namespace) -> None:
    if args.json:
        check_output(args.json, "--json")
    if args.plot:
        from sim.plot import image_format  # matplotlib loads only when a plot is asked for

        image_format(args.plot)
        check_output(args.plot, "--plot")


def _policies(text: str, config: RouterConfig) -> list[PolicySpec]:
    specs = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        if name not in (*POLICIES, ORACLE):
            raise ConfigError(f"unknown policy {name!r}; known: {', '.join((*POLICIES, ORACLE))}")
        specs.append(PolicySpec(name=name, config=config if name == "router" else None))
    if not specs:
        raise ConfigError(f"--policies {text!r} names no policy; known: {', '.join(POLICIES)}")
    return specs


def _sweep(text: str | None, config: RouterConfig) -> list[PolicySpec]:
    if text is None:
        return []
    key, sep, joined = text.partition("=")
    values = [v.strip() for v in joined.split(",")]
    if not sep or not key or not all(values):
        raise ConfigError(f"--sweep {text!r}: expected KEY=V1,V2,... with no empty value")
    return [PolicySpec(name=f"router[{key}={v}]", config=_config(config, [f"{key}={v}"])) for v in values]


def _check_unique_names(specs: list[PolicySpec]) -> None:
    # a policy listed twice would print the same row twice and overwrite itself in the goals
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"policy {spec.name} is asked for twice")
        seen.add(spec.name)


def _config(config: RouterConfig, assignments: list[str]) -> RouterConfig:
    known = {f.name: f for f in fields(RouterConfig)}
    changes: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ConfigError(f"setting {item!r}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        changes[key] = _setting(key, raw, getattr(config, key))
    return replace(config, **changes)


def _setting(key: str, raw: str, current: Any) -> Any:
    value = _parse(key, raw, current)
    if key == "quality_gate" and value not in {m.value for m in GateMode}:
        raise ConfigError(f"setting {key}={raw}: one of {', '.join(m.value for m in GateMode)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if not math.isfinite(value):
        raise ConfigError(f"setting {key}={raw}: must be a finite number")
    if key in POSITIVE_SETTINGS and value <= 0:
        raise ConfigError(f"setting {key}={raw}: must be positive")
    if key in NON_NEGATIVE_SETTINGS and value < 0:
        raise ConfigError(f"setting {key}={raw}: must be 0 or more")
    return value


def _parse(key: str, raw: str, current: Any) -> Any:
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
        raise ConfigError(f"setting {key}={raw}: not a valid {type(current).__name__}") from None
    return raw
