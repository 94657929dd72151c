"""Leadership: one decider holds a lease in Redis; its value carries a fencing token."""

from __future__ import annotations

import redis

from streams.codec import as_text
from streams.scripts import RELEASE_LEASE, RENEW_LEASE


class Lease:
    def __init__(self, r: redis.Redis, *, leader_key: str, fence_key: str, holder: str, ttl_ms: int) -> None:
        self.r = r
        self.leader_key = leader_key
        self.fence_key = fence_key
        self.holder = holder
        self.ttl_ms = ttl_ms
        self.value: str | None = None  # "<token>:<holder>" while we lead
        self._renew = r.register_script(RENEW_LEASE.source)
        self._release = r.register_script(RELEASE_LEASE.source)

    @property
    def token(self) -> int | None:
        return int(self.value.split(":", 1)[0]) if self.value else None

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it. Each success gets a larger fencing token."""
        if self.r.exists(self.leader_key):
            return False
        token = int(self.r.incr(self.fence_key))
        value = f"{token}:{self.holder}"
        if self.r.set(self.leader_key, value, nx=True, px=self.ttl_ms):
            self.value = value
            return True
        return False

    def renew(self) -> bool:
        """Extend the lease; False means it lapsed and another process may lead now."""
        if self.value is None:
            return False
        if int(self._renew(keys=[self.leader_key], args=[self.value, self.ttl_ms])) == 1:
            return True
        self.value = None
        return False

    def release(self) -> None:
        if self.value is not None:
            self._release(keys=[self.leader_key], args=[self.value])
            self.value = None

    def current_holder(self) -> str | None:
        raw = self.r.get(self.leader_key)
        return None if raw is None else as_text(raw)
