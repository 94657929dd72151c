"""A primary, a replica behind a lagging link (support.relay) and a front relay that clients
connect through, so a failover can be staged by the test: kill the primary with SIGKILL, promote
the replica (REPLICAOF NO ONE), point the front at it. Every process is stopped by `close`."""

from __future__ import annotations

import signal
from pathlib import Path

import redis

from support.processes import wait_for
from support.relay import Relay
from support.servers import RedisServer


class ReplicatedRedis:
    def __init__(self, directory: Path, *, lag_s: float = 0.2) -> None:
        self.primary = RedisServer(directory / "primary").start()
        self.link = Relay(self.primary.port, delay_s=lag_s)
        self.replica = RedisServer(
            directory / "replica", extra=("--replicaof", "127.0.0.1", str(self.link.port))
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

    def new_primary(self) -> redis.Redis:
        return self.replica.client()

    def close(self) -> None:
        self.front.close()
        self.link.close()
        self.replica.close()
        self.primary.close()
