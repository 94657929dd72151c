"""`router worker`: the routing loop."""

from __future__ import annotations

import argparse

from streams.connection import connect
from worker.commands.common import add_connection_options, settings_from
from worker.logs import configure
from worker.routing import RoutingWorker


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("worker", help="run the routing worker (the main job)")
    add_connection_options(p)
    p.add_argument(
        "--dry-run", action="store_true", help="shadow mode: own consumer group, publish only decision records"
    )
    p.add_argument("--batch-size", type=int, help="entries read per batch (env ROUTER_BATCH_SIZE)")
    p.add_argument("--block-ms", type=int, help="longest blocking read (env ROUTER_BLOCK_MS)")
    p.add_argument("--consumer", help="consumer name in the group (env ROUTER_CONSUMER)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args, batch_size=args.batch_size, block_ms=args.block_ms, consumer=args.consumer)
    configure(settings.log_level)
    # no ping first: an unreachable Redis at start is an outage like any other, waited out with backoff
    client = connect(settings.redis_url, block_ms=settings.block_ms)
    return RoutingWorker(settings, client, dry_run=args.dry_run).run()
