"""Reading the ledger snapshot back from Redis (streams/outputs.py writes it with each atomic step):
the arguments of `Router.restore`, from one pipelined round trip."""

from __future__ import annotations

from typing import Any

import redis

from streams.codec import as_text, decode, decoded_hash
from streams.keys import StateKeys


def read_ledger(pipe: redis.client.Pipeline, state: StateKeys, *, assigned: bool = True) -> dict[str, Any]:
    """`Router.restore`'s keyword arguments, read on `pipe` (the caller chooses MULTI or not). Slots,
    waiting and assigned tasks must decode (a bad one fails the read); the optional parts skip what
    does not. `assigned=False` leaves out the assigned tasks, which a queue reader does not need."""
    pipe.hgetall(state.slots)
    pipe.hgetall(state.waiting)
    pipe.lrange(state.ev_window, 0, -1)
    pipe.hgetall(state.utilisation)
    for key in (state.budgets, state.rates, state.escalations, state.quality):
        pipe.hgetall(key)
    if assigned:
        pipe.hgetall(state.assigned)
    slots, waiting, ev_values, utilisation, budgets, rates, escalations, quality, *held = pipe.execute()
    return {
        "slots": [decode(v) for v in slots.values()],
        "waiting": [decode(v) for v in waiting.values()],
        "assigned": {as_text(k): decode(v) for k, v in held[0].items()} if held else {},
        "ev_values": [float(v) for v in ev_values],
        "utilisation": {as_text(k): float(v) for k, v in utilisation.items()},
        "budgets": decoded_hash(budgets),
        "rates": decoded_hash(rates),
        "escalations": decoded_hash(escalations),
        "quality": {as_text(k): as_text(v) for k, v in quality.items()},
    }
