"""The dashboard's matrix query over 1,000,000 decisions in PostgreSQL: how long one panel takes.

Seeds its own schema (created here, kept between runs unless --reseed, since seeding is the slow
part) with N decisions spread evenly over the last `--days` days, 85% assigned across seven
models and eight layers, 60% of the assigned with reported usage; then times
`dashboard.queries.window_sums` (the one query behind the Routing panel and the JSON API: whole
hours from the hourly rollup, the partial first and last hour from the decision and usage tables)
and, for comparison, `raw_window_sums` (the decision and usage tables alone) for the 1 h, 24 h and
7 d windows: median and worst of `--repeat` runs after one warm-up. The rollup is filled by the
store's migration 0002 after seeding, as it would be for a store that predates it; that backfill
is timed too. Not a test: run it by hand.

    /tmp/venv/bin/python bench/matrix_query.py                 # 1,000,000 decisions over 7 days
    /tmp/venv/bin/python bench/matrix_query.py --days 1        # all of them inside the 24 h window
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, create_engine, text

from dashboard.queries import CellSums, raw_window_sums, window_sums
from store.db import make_engine
from store.migrate import VERSION_TABLE, upgrade
from store.schema import HOURLY_TABLE, metadata

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WINDOWS_H = (1, 24, 24 * 7)

SEED_DECISIONS = """
INSERT INTO model_routing_decisions (
    decision_id, task_id, chosen_slot_id, chosen_model, alternatives_json, reason, decided_at, outcome,
    reason_code, chosen_tier, account, layer, priority, ev, ev_p50, ev_p90, override, min_tier,
    est_cost_usd, dry_run, event_id, policy_version, recorded_at)
SELECT 'b-' || g, 't-' || g,
    CASE WHEN g % 20 < 17 THEN 'slot-' || (g % 300) END,
    CASE WHEN g % 20 < 17 THEN (ARRAY['haiku','minimax','glm','sonnet','codex','opus','gpt-5'])[1 + g % 7] END,
    '[]', 'seeded', :now - (g::float8 / :n) * :span,
    CASE WHEN g % 20 < 17 THEN 'assigned' WHEN g % 20 < 19 THEN 'await_slot' ELSE 'unroutable' END,
    'cheapest_capable',
    CASE WHEN g % 20 < 17 THEN (ARRAY[1,1,1,2,2,3,3])[1 + g % 7] END,
    CASE WHEN g % 20 < 17 THEN 'default' END,
    (ARRAY['unknown','strategy','design','implementation','review','research','docs','chore'])[1 + (g / 7) % 8],
    (g % 101), (g % 997) / 997.0, 0.5, 0.9, false, 1,
    0.001 + (g % 50) / 1000.0, (g % 100) = 0, (g || '-0'), 'bench', :now
FROM generate_series(1, :n) AS g
"""

SEED_USAGE = """
INSERT INTO model_routing_usage (event_id, decision_id, task_id, slot_id, model, account, input_tokens,
    output_tokens, cost_usd, cost_source, reported_at, recorded_at)
SELECT 'u-' || decision_id, decision_id, task_id, chosen_slot_id, chosen_model, 'default', 20000, 4000,
    est_cost_usd * 1.1, 'reported', decided_at, decided_at
FROM model_routing_decisions
WHERE outcome = 'assigned' AND (substr(decision_id, 3)::bigint % 10) < 6
"""


def seed(engine: Engine, *, n: int, days: float, now: datetime) -> float:
    """Seed at revision 0001, then upgrade (which backfills the rollup); returns the upgrade's seconds."""
    metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    upgrade(engine, "0001")
    params = {"n": n, "now": now, "span": timedelta(days=days)}
    with engine.begin() as conn:
        conn.execute(text(SEED_DECISIONS), params)
        conn.execute(text(SEED_USAGE))
    started = time.perf_counter()
    upgrade(engine)
    backfill_s = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE model_routing_decisions"))
        conn.execute(text("VACUUM ANALYZE model_routing_usage"))
        conn.execute(text(f"VACUUM ANALYZE {HOURLY_TABLE}"))
    return backfill_s


Query = Callable[..., list[CellSums]]


def count(engine: Engine) -> int:
    """Decisions stored, or -1 when the schema predates the rollup (so it is seeded again)."""
    with engine.connect() as conn:
        if not conn.execute(text("SELECT to_regclass(:t)"), {"t": HOURLY_TABLE}).scalar_one():
            return -1
        return int(conn.execute(text("SELECT count(*) FROM model_routing_decisions")).scalar_one())


def time_window(engine: Engine, query: Query, *, since: datetime, until: datetime, repeat: int) -> tuple[float, float]:
    query(engine, since=since, until=until)  # warm-up: plan cache, buffers
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        query(engine, since=since, until=until)
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), max(runs)


def same(a: list[CellSums], b: list[CellSums]) -> bool:
    """Counts equal, money equal to a millionth of a dollar per cell."""
    by_cell = {(s.model, s.layer): s for s in b}
    return len(a) == len(b) and all(
        (x.model, x.layer) in by_cell
        and all(
            abs(getattr(x, f) - getattr(by_cell[(x.model, x.layer)], f)) < 1e-6
            for f in (
                "decisions",
                "actual_decisions",
                "actual_usd",
                "estimated_decisions",
                "estimated_usd",
                "with_estimate",
                "estimate_usd_all",
                "premium",
                "premium_below_p50",
            )
        )
        for x in a
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=POSTGRES_URL)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0, help="spread the decisions over this many days")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    schema = f"bench_matrix_{args.decisions}_{str(args.days).replace('.', '_')}"
    admin = create_engine(args.url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    engine = make_engine(args.url, connect_args={"options": f"-c search_path={schema}"})
    # The seeded times are relative to this "now", kept in the schema's comment so reruns line up.
    with admin.connect() as conn:
        stamp = conn.execute(text("SELECT obj_description(oid) FROM pg_namespace WHERE nspname = :s"), {"s": schema})
        saved = stamp.scalar_one_or_none()
    now = datetime.fromisoformat(saved) if saved else datetime.now(tz=UTC).replace(microsecond=0)
    if args.reseed or not saved or count(engine) != args.decisions:
        now = datetime.now(tz=UTC).replace(microsecond=0)
        started = time.perf_counter()
        backfill_s = seed(engine, n=args.decisions, days=args.days, now=now)
        with admin.begin() as conn:
            conn.execute(text(f"COMMENT ON SCHEMA \"{schema}\" IS '{now.isoformat()}'"))
        print(
            f"seeded {args.decisions:,} decisions over {args.days:g} days in {time.perf_counter() - started:.1f} s; "
            f"migration 0002 (rollup backfill) took {backfill_s:.1f} s"
        )
    with engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar_one()
    print(f"PostgreSQL {version}; {count(engine):,} decisions in schema {schema}")
    # Windows end at the seeding's "now", to the second as the dashboard's do: mid-hour, so both
    # partial hours are read raw.
    until = now
    for hours in WINDOWS_H:
        since = until - timedelta(hours=hours)
        raw = raw_window_sums(engine, since=since, until=until)
        agree = same(window_sums(engine, since=since, until=until), raw)
        rows = sum(c.decisions for c in raw)
        for name, query in (("rollup", window_sums), ("raw", raw_window_sums)):
            median_ms, worst_ms = time_window(engine, query, since=since, until=until, repeat=args.repeat)
            print(
                f"window {hours:>4} h, {name:>6}: {rows:>9,} assigned decisions; "
                f"median {median_ms:7.1f} ms, worst {worst_ms:7.1f} ms" + ("" if agree else "  RESULTS DIFFER")
            )


if __name__ == "__main__":
    main()
