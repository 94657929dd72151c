"""The reference runs: load models x fleets x traces x offered loads, several seeds, one report.

`router simulate --reference` (docs/simulator.md, "Reference runs") runs every scenario once per seed,
takes per scenario the median over seeds of each goal's figure (router against fifo-capable on the
same tasks), and writes them as Markdown and JSON, with a Pareto plot per load model. Options narrow
it (`--load-model`, `--fleet`, `--trace`, `--load`, `--seed`, `--limit`) so a piece runs in seconds.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from router.engine import RouterConfig
from router.errors import ConfigError
from sim.fleet import load_fleet
from sim.loads import load_model
from sim.metrics import Metrics
from sim.outputs import check_output, prepare_parent
from sim.policies import ORACLE
from sim.report import Goal, goals, json_value, write_json
from sim.run import PolicySpec, run_scenario

LOAD_MODELS = ("sessions", "calls")
FLEETS = ("2-4-10", "4-4-4")
TRACES = ("azure-code", "azure-conv", "mooncake")
LOADS = (0.5, 0.75, 0.9)
SEEDS = (7, 8, 9)
BASELINE = "fifo-capable"
POLICY = "router"
TOP_EV_GOAL = "top-EV p95 wait / fifo-capable"
TOP_EV_TARGET = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One run: a scenario and a seed."""

    load_model: str
    fleet: str  # a fleet name or path, as --fleet takes it
    trace: str
    load: float
    seed: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitResult:
    unit: Unit
    fleet_name: str
    tasks: int
    metrics: tuple[Metrics, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One scenario's figures over its seeds: for each policy, the median of each goal's value."""

    load_model: str
    fleet: str
    trace: str
    load: float
    seeds: tuple[int, ...]
    tasks: int
    goals: dict[str, list[Goal]]  # policy -> its goals, each value the median over seeds
    eta_mape: float  # the router's ETA error, median over seeds (NaN: no ETA given)
    eta_tasks: int  # the tasks it was measured on, summed over seeds
    # fifo-capable's all-task and top-EV p95 wait in s, median over seeds: the ratios' denominators
    # (a ratio to a wait of a few seconds says little)
    baseline_p95_s: tuple[float, float]
    runs: tuple[UnitResult, ...]  # every seed's figures, for the JSON
    bound: float  # the oracle's top-EV ratio, median over seeds (NaN: the oracle was not run)

    @property
    def router_goals(self) -> list[Goal]:
        return self.goals.get(POLICY, [])

    def goal(self, policy: str, name: str) -> float:
        return next((g.value for g in self.goals.get(policy, []) if g.name == name), math.nan)

    @property
    def rests_on_bound(self) -> bool:
        """The router misses the top-EV goal and so does the oracle's replay: the goal is out of reach."""
        top = self.goal(POLICY, TOP_EV_GOAL)
        return top > TOP_EV_TARGET and math.isfinite(self.bound) and self.bound > TOP_EV_TARGET


def units(
    *,
    load_models: Sequence[str] = LOAD_MODELS,
    fleets: Sequence[str] = FLEETS,
    traces: Sequence[str] = TRACES,
    loads: Sequence[float] = LOADS,
    seeds: Sequence[int] = SEEDS,
) -> list[Unit]:
    return [
        Unit(load_model=m, fleet=f, trace=t, load=load, seed=s)
        for m in load_models
        for f in fleets
        for t in traces
        for load in loads
        for s in seeds
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    unit: Unit
    specs: tuple[PolicySpec, ...]
    limit: int | None
    traces_dir: Path | None


def _run_job(job: _Job) -> UnitResult:
    u = job.unit
    fleet = load_fleet(u.fleet)
    mapping = load_model(u.load_model, seed=u.seed, offered_load=u.load)
    result = run_scenario(u.trace, fleet, job.specs, mapping=mapping, limit=job.limit, traces_dir=job.traces_dir)
    return UnitResult(unit=u, fleet_name=fleet.name, tasks=result.tasks, metrics=tuple(result.metrics))


def run_units(
    todo: Sequence[Unit],
    specs: Sequence[PolicySpec],
    *,
    limit: int | None = None,
    traces_dir: Path | None = None,
    jobs: int = 1,
    progress: Callable[[int, UnitResult], None] | None = None,
) -> list[UnitResult]:
    """Every unit's figures, in the order given; with jobs > 1 in that many processes."""
    work = [_Job(unit=u, specs=tuple(specs), limit=limit, traces_dir=traces_dir) for u in todo]
    results: list[UnitResult] = []
    if jobs <= 1 or len(work) <= 1:
        done: Iterable[UnitResult] = map(_run_job, work)
        for result in done:
            results.append(result)
            if progress:
                progress(len(results), result)
        return results
    with get_context("spawn").Pool(min(jobs, len(work))) as pool:
        for result in pool.imap(_run_job, work):
            results.append(result)
            if progress:
                progress(len(results), result)
    return results


def summarise(results: Sequence[UnitResult]) -> list[Scenario]:
    """One Scenario per (load model, fleet, trace, load), in the order they first appear."""
    groups: dict[tuple[str, str, str, float], list[UnitResult]] = {}
    for r in results:
        u = r.unit
        groups.setdefault((u.load_model, r.fleet_name, u.trace, u.load), []).append(r)
    return [_scenario(key, runs) for key, runs in groups.items()]


def _scenario(key: tuple[str, str, str, float], runs: list[UnitResult]) -> Scenario:
    load_model_name, fleet, trace, load = key
    policies = [m.policy for m in runs[0].metrics if m.policy != BASELINE]
    per_policy = {p: _median_goals([goals(r.metrics, policy=p, baseline=BASELINE) for r in runs]) for p in policies}
    per_policy = {p: g for p, g in per_policy.items() if g}
    router = [m for r in runs for m in r.metrics if m.policy == POLICY]
    baseline = [m for r in runs for m in r.metrics if m.policy == BASELINE]
    oracle = per_policy.get(ORACLE, [])
    return Scenario(
        load_model=load_model_name,
        fleet=fleet,
        trace=trace,
        load=load,
        seeds=tuple(r.unit.seed for r in runs),
        tasks=runs[0].tasks,
        goals=per_policy,
        eta_mape=median([m.eta_mape for m in router]),
        eta_tasks=sum(m.eta_tasks for m in router),
        baseline_p95_s=(
            median([m.wait_p95_s for m in baseline]),
            median([m.top_decile_wait_p95_s for m in baseline]),
        ),
        runs=tuple(runs),
        bound=next((g.value for g in oracle if g.name == TOP_EV_GOAL), math.nan),
    )


def median(values: Sequence[float]) -> float:
    """The median of the values that are numbers (an infinite ratio counts as the largest); NaN if none."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else math.nan


def _median_goals(per_seed: list[list[Goal]]) -> list[Goal]:
    if not per_seed or not per_seed[0]:
        return []
    out = []
    for i, first in enumerate(per_seed[0]):
        value = median([seed_goals[i].value for seed_goals in per_seed])
        out.append(Goal(name=first.name, target=first.target, value=value, met=_meets(first.name, value)))
    return out


# The goals' tests (sim.report.goals) applied to a median over seeds.
_LIMITS = {
    "premium low-value share": 0.02,
    "capability violations": 0.0,
    TOP_EV_GOAL: TOP_EV_TARGET,
    "premium-only p95 wait / fifo-capable": 1.0,
    "all-task p95 wait / fifo-capable": 1.5,
    "cost / fifo-capable": 1.0,
}


def _meets(name: str, value: float) -> bool:
    return value <= _LIMITS[name]


# -- the report ---------------------------------------------------------------------------------

GOAL_HEADS = (
    ("premium low-value share", "premium low-value (<= 2%)", "{:.1%}"),
    ("capability violations", "violations (0)", "{:.0f}"),
    (TOP_EV_GOAL, "top-EV p95 (<= 0.2)", "{:.3f}"),
    ("premium-only p95 wait / fifo-capable", "premium-only p95 (<= 1)", "{:.3f}"),
    ("all-task p95 wait / fifo-capable", "all-task p95 (<= 1.5)", "{:.3f}"),
    ("cost / fifo-capable", "cost (<= 1)", "{:.3f}"),
)


def markdown(scenarios: Sequence[Scenario], *, command: str, policy: str = POLICY) -> str:
    lines = [
        "# Reference runs",
        "",
        f"`{command}`",
        "",
        f"{policy} against fifo-capable on the same tasks, median over the seeds of each scenario. Bold: a missed",
        "goal. top-EV bound: the same ratio for the hindsight oracle (fifo-capable that starts the run's final",
        "top EV decile before any other task, each task on the lowest free capable tier); where the router",
        "misses the goal and the oracle does too, the goal rests on that bound and the next column says how",
        "close the router gets (router / bound). ETA error: median absolute percentage error of the ETA at a",
        "task's first await, over tasks that waited more than 60 s (n/a: no such task, or no ETA).",
        "",
        _summary(scenarios, policy),
        "",
        "| load model | fleet | trace | load | tasks | seeds | "
        + " | ".join(h for _, h, _ in GOAL_HEADS)
        + " | top-EV bound | router / bound | ETA error | fifo-capable p95 s (all / top-EV) |",
        "|" + "---|" * (10 + len(GOAL_HEADS)),
    ]
    for s in scenarios:
        cells = [s.load_model, s.fleet, s.trace, f"{s.load:g}", f"{s.tasks:,}", ",".join(map(str, s.seeds))]
        by_name = {g.name: g for g in s.goals.get(policy, [])}
        for name, _, fmt in GOAL_HEADS:
            g = by_name.get(name)
            cells.append("-" if g is None else _cell(g.value, fmt, bold=not g.met))
        top = s.goal(policy, TOP_EV_GOAL)
        cells.append(_cell(s.bound, "{:.3f}"))
        cells.append(_cell(top / s.bound, "{:.2f}") if s.rests_on_bound else "-")
        cells.append(_cell(s.eta_mape, "{:.0%}"))
        cells.append(f"{_cell(s.baseline_p95_s[0], '{:,.0f}')} / {_cell(s.baseline_p95_s[1], '{:,.0f}')}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _summary(scenarios: Sequence[Scenario], policy: str) -> str:
    total = len(scenarios)
    rows = ["| goal | scenarios met | missed but out of reach (bound) |", "|---|---|---|"]
    for name, head, _ in GOAL_HEADS:
        met = sum(1 for s in scenarios if any(g.name == name and g.met for g in s.goals.get(policy, [])))
        bound = sum(1 for s in scenarios if name == TOP_EV_GOAL and s.rests_on_bound)
        rows.append(f"| {head} | {met} / {total} | {bound if name == TOP_EV_GOAL else '-'} |")
    every = sum(1 for s in scenarios if s.goals.get(policy) and all(g.met for g in s.goals[policy]))
    rows.append(f"| every goal | {every} / {total} | |")
    return "\n".join(rows)


def _cell(value: float, fmt: str, *, bold: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    text = "inf" if math.isinf(value) else fmt.format(value)
    return f"**{text}**" if bold else text


def to_json(scenarios: Sequence[Scenario], *, command: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command,
        "settings": settings,
        "scenarios": [
            {
                "load_model": s.load_model,
                "fleet": s.fleet,
                "trace": s.trace,
                "offered_load": s.load,
                "tasks": s.tasks,
                "seeds": list(s.seeds),
                "goals": {p: [g.to_json() for g in gs] for p, gs in s.goals.items()},
                "top_ev_bound": _finite(s.bound),
                "eta_mape": _finite(s.eta_mape),
                "eta_tasks": s.eta_tasks,
                "fifo_capable_p95_s": {"all": _finite(s.baseline_p95_s[0]), "top_ev": _finite(s.baseline_p95_s[1])},
                "runs": [{"seed": r.unit.seed, "policies": [_metrics_json(m) for m in r.metrics]} for r in s.runs],
            }
            for s in scenarios
        ],
    }


def _metrics_json(m: Metrics) -> dict[str, Any]:
    return {k: json_value(v) for k, v in m.to_json().items()}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def pareto_bound(scenarios: Sequence[Scenario]) -> float:
    """The oracle's top-EV ratio, median over the scenarios given (NaN if it was not run)."""
    return median([s.bound for s in scenarios])


def pareto_points(scenarios: Sequence[Scenario]) -> dict[str, tuple[float, float]]:
    """Per policy: (all-task p95 ratio, top-EV p95 ratio), each the median over the scenarios given.

    Not the oracle: it replays the top decile alone, so it has no all-task figure (see `pareto_bound`).
    """
    policies = [p for p in dict.fromkeys(p for s in scenarios for p in s.goals) if p != ORACLE]
    out = {}
    for p in policies:
        every = median([s.goal(p, "all-task p95 wait / fifo-capable") for s in scenarios])
        top = median([s.goal(p, TOP_EV_GOAL) for s in scenarios])
        out[p] = (every, top)
    return out


# -- `router simulate --reference` --------------------------------------------------------------

REPORT_NAME = "simulate-reference"
PARETO_NAME = "simulate-pareto-{}.png"


def run_reference(args: argparse.Namespace, specs: Sequence[PolicySpec], config: RouterConfig) -> int:
    names = {s.name for s in specs}
    if BASELINE not in names or POLICY not in names:
        raise ConfigError(f"--reference compares {POLICY} with {BASELINE}: --policies must name both")
    if args.json or args.plot:
        raise ConfigError("--reference writes its report to --out-dir; --json and --plot are for single runs")
    out_dir: Path = args.out_dir
    todo = units(
        load_models=args.load_model or LOAD_MODELS,
        fleets=args.fleet or FLEETS,
        traces=args.trace or TRACES,
        loads=args.load or LOADS,
        seeds=args.seed or SEEDS,
    )
    for fleet in dict.fromkeys(u.fleet for u in todo):
        load_fleet(fleet)  # every fleet checked before the first run
    report, report_json = out_dir / f"{REPORT_NAME}.md", out_dir / f"{REPORT_NAME}.json"
    plots = {m: out_dir / PARETO_NAME.format(m) for m in dict.fromkeys(u.load_model for u in todo)}
    for path in (report, report_json, *plots.values()):
        check_output(path, "--out-dir")
    print(f"{len(todo)} runs ({len(todo) // len(args.seed or SEEDS)} scenarios), {len(specs)} policies each")

    def progress(done: int, r: UnitResult) -> None:
        u = r.unit
        print(f"[{done}/{len(todo)}] {u.load_model} {r.fleet_name} {u.trace} load {u.load:g} seed {u.seed}: {r.tasks}")

    results = run_units(todo, specs, limit=args.limit, traces_dir=args.traces_dir, jobs=args.jobs, progress=progress)
    scenarios = summarise(results)
    command = _command(args)
    text = markdown(scenarios, command=command)
    settings = {f.name: getattr(config, f.name) for f in fields(config)}
    prepare_parent(report)
    try:
        report.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {report}: {exc.strerror or exc}") from exc
    write_json(report_json, to_json(scenarios, command=command, settings=settings))
    from sim.plot import pareto  # matplotlib loads only when a plot is drawn

    for model, path in plots.items():
        mine = [s for s in scenarios if s.load_model == model]
        title = f"load model {model}: {len(mine)} scenarios, median ratios to fifo-capable"
        pareto(pareto_points(mine), path, title=title, bound=pareto_bound(mine))
    print("\n" + text)
    print(f"wrote {report}, {report_json}, " + ", ".join(map(str, plots.values())))
    return 0


def _command(args: argparse.Namespace) -> str:
    parts = ["router simulate --reference"]
    for option, values in (
        ("--load-model", args.load_model),
        ("--fleet", args.fleet),
        ("--trace", args.trace),
        ("--load", args.load),
        ("--seed", args.seed),
        ("--set", args.set),
    ):
        parts += [f"{option} {v:g}" if isinstance(v, float) else f"{option} {v}" for v in values or []]
    if args.policies:
        parts.append(f"--policies {args.policies}")
    if args.sweep:
        parts.append(f"--sweep {args.sweep}")
    if args.limit:
        parts.append(f"--limit {args.limit}")
    return " ".join(parts)
