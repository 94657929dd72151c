"""Property-based fuzzing of event payloads (ARCHITECTURE.md invariant 3): no crash, every invalid
entry rejected with a reason (so dead-lettered), every valid one applied and routed.

10,000 generated sequences go through the parser and the router in process (plain values, fast);
a smaller batch goes end to end through a real worker process."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.payloads import MAX_BYTES, entry
from support.processes import RouterProcess, wait_for
from support.router_harness import RouterHarness

from router.catalog import Catalog
from router.engine import Router
from router.errors import InvalidEvent
from router.slots import SlotState
from router.values import Decision, Outcome, TaskCancelled, TaskPending
from streams.keys import Keys
from streams.schema import parse_event

pytestmark = pytest.mark.faults

IN_PROCESS_CASES = int(os.environ.get("FUZZ_CASES", "10000"))
END_TO_END_ENTRIES = 1_000


@pytest.fixture(scope="module")
def models(catalog: Catalog) -> frozenset[str]:
    return frozenset(catalog.models)


@settings(
    max_examples=IN_PROCESS_CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(entries=st.lists(entry(), min_size=1, max_size=8))
def test_parser_and_router_never_crash_and_reject_exactly_the_invalid(
    entries: list[tuple[bytes, bool]], catalog: Catalog, models: frozenset[str]
) -> None:
    h = RouterHarness(catalog, snapshot=True, stale_after_s=30, assignment_timeout_s=5)
    pending: set[str] = set()
    unroutable: set[str] = set()
    for n, (raw, valid) in enumerate(entries):
        try:
            event = parse_event(raw, models=models, max_bytes=MAX_BYTES)
        except InvalidEvent as exc:
            assert not valid, f"valid entry rejected: {exc}: {raw[:300]!r}"
            assert str(exc)  # the reason that goes into the dead letter
            continue
        assert valid, f"invalid entry accepted: {raw[:300]!r}"
        effects = h.batch(event, now_ms=1_000_000 + n * 1_000)  # the snapshot takes its changes
        if isinstance(event, TaskPending):
            pending.add(event.task.task_id)
        elif isinstance(event, TaskCancelled):
            pending.discard(event.task_id)
        for effect in effects:
            if isinstance(effect, Decision) and effect.outcome is Outcome.UNROUTABLE:
                unroutable.add(effect.task.task_id)
    _check_ledger(h.router, pending, unroutable)


def _check_ledger(router: Router, pending: set[str], unroutable: set[str]) -> None:
    held = Counter(r.task_id for r in router.ledger.slots.values() if r.state is SlotState.BUSY)
    assert all(n == 1 for n in held.values()), f"a task on two slots: {held}"
    waiting = set(router.waiting.tasks)
    assert not waiting & set(router.assigned), "a task both waiting and assigned"
    # every valid, uncancelled task is routed somewhere: assigned, waiting, or found unroutable
    lost = pending - waiting - set(router.assigned) - unroutable
    assert not lost, f"tasks lost: {lost}"


def generated_entries(count: int) -> list[tuple[bytes, bool]]:
    """`count` entries drawn by hypothesis (generation only: nothing to shrink here)."""
    out: list[tuple[bytes, bool]] = []

    @settings(max_examples=count, deadline=None, derandomize=True, database=None, phases=[Phase.generate])
    @given(entry())
    def collect(item: tuple[bytes, bool]) -> None:
        out.append(item)

    collect()
    return out


@pytest.mark.integration
def test_worker_process_dead_letters_exactly_the_invalid_entries(
    redis_url: str, start_worker: Callable[..., RouterProcess]
) -> None:
    entries = generated_entries(END_TO_END_ENTRIES)
    assert len(entries) >= END_TO_END_ENTRIES * 9 // 10
    prefix = f"fuzz:{uuid.uuid4().hex[:8]}:"
    keys = Keys(prefix)
    r = redis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        worker = start_worker(env={"ROUTER_PREFIX": prefix, "ROUTER_MAX_EVENT_BYTES": str(MAX_BYTES)})
        pipe = r.pipeline(transaction=False)
        for raw, _ in entries:
            pipe.xadd(keys.events, {"data": raw})
        pipe.xadd(keys.events, {"other": b"no data field"})  # invalid too: no `data` at all
        ids = pipe.execute()
        invalid = {i.decode() for i, (_, valid) in zip(ids, [*entries, (b"", False)], strict=True) if not valid}

        def done() -> bool:
            pending: Any = r.xpending(keys.events, "router")
            return r.xlen(keys.dead) >= len(invalid) and not pending["pending"] and _delivered_all(r, keys)

        wait_for(done, timeout_s=60, what="every entry acknowledged")
        letters = [orjson.loads(f[b"data"]) for _, f in r.xrange(keys.dead)]
        assert {d["source_id"] for d in letters} == invalid
        assert len(letters) == len(invalid)
        assert all(d["error"] for d in letters)
        assert worker.proc.poll() is None
        assert worker.terminate() == 0
        print(f"{len(entries)} entries end to end, {len(invalid)} invalid, all dead-lettered with a reason")
    finally:
        for key in r.scan_iter(match=f"{prefix}*"):
            r.delete(key)
        r.close()


def _delivered_all(r: redis.Redis, keys: Keys) -> bool:
    groups: Any = r.xinfo_groups(keys.events)
    return bool(groups) and int(groups[0].get("lag") or 0) == 0
