"""A primary, a replica behind a lagging link (support.relay) and a front relay that clients
connect through, so a failover can be staged by the test: kill the primary with SIGKILL, promote
the replica (REPLICAOF NO ONE), point the front at it, and a fresh replica of it joins. Every
process is stopped by `close`."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from support.processes import wait_for
from support.relay import Relay
from support.servers import RedisServer

# a primary sends a joining replica its data at once, instead of waiting 5 s for others to join
SYNC_AT_ONCE = ("--repl-diskless-sync-delay", "0")


class ReplicatedRedis:
    def __init__(self, directory: Path, *, lag_s: float = 0.2) -> None:
        self.directory = directory
        self.lag_s = lag_s
        self.primary = RedisServer(directory / "primary", extra=SYNC_AT_ONCE).start()
        self.link = Relay(self.primary.port, delay_s=lag_s)
        self.replica = RedisServer(
            directory / "replica", extra=(*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(self.link.port))
        ).start()
        self.front = Relay(self.primary.port)  # what clients connect to: the primary of the moment
        wait_for(self._linked, what="the replica in sync with the primary")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.front.port}/0"

    def _linked(self) -> bool:
        with self.replica.client() as c:
            return str(c.info("replication").get("master_link_status")) == "up"

    def fail_over(self) -> None:
        """The primary dies (SIGKILL: no goodbye to anyone); the replica, with whatever its lagging
        link had delivered, becomes the primary; clients reconnect to it through the front."""
        assert self.primary.proc is not None
        self.primary.proc.send_signal(signal.SIGKILL)
        self.primary.proc.wait(timeout=10)
        self.link.close()
        with self.replica.client() as c:
            c.replicaof("NO", "ONE")
        self.front.point_at(self.replica.port)
        self._rejoin()

    def _rejoin(self) -> None:
        """The old primary comes back as a replica of the new one (what Sentinel makes of it),
        behind a lagging link again: with ROUTER_MIN_REPLICAS=1, routing waits for it."""
        old = self.primary
        self.primary, self.replica = self.replica, old
        self.link = Relay(self.primary.port, delay_s=self.lag_s)
        self.replica = RedisServer(
            self.directory / f"rejoined-{self.link.port}",
            extra=(*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(self.link.port)),
        ).start()

    def new_primary(self) -> redis.Redis:
        return self.primary.client()

    def close(self) -> None:
        self.front.close()
        self.link.close()
        self.replica.close()
        self.primary.close()
