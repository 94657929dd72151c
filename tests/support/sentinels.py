"""Three `redis-sentinel` processes (Debian's package) watching a primary with one replica, on
private ports of 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import redis

from support.processes import wait_for
from support.replicas import SYNC_AT_ONCE
from support.servers import RedisServer, free_port

SERVICE = "mymaster"


class SentinelGroup:
    def __init__(self, directory: Path, *, down_after_ms: int = 1000) -> None:
        self.primary = RedisServer(directory / "primary", extra=SYNC_AT_ONCE).start()
        self.replica = RedisServer(
            directory / "replica", extra=(*SYNC_AT_ONCE, "--replicaof", "127.0.0.1", str(self.primary.port))
        ).start()
        self.ports = [free_port() for _ in range(3)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for n, port in enumerate(self.ports):
            home = directory / f"sentinel-{n}"
            home.mkdir(parents=True)
            conf = home / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
            )
            binary = shutil.which("redis-sentinel") or "redis-sentinel"
            self.procs.append(
                subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        wait_for(self._watching, what="the sentinels to see the primary and its replica")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel answering names it."""
        for port in self.ports:
            try:
                with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as s:
                    found = s.sentinel_get_master_addr_by_name(SERVICE)
                    return int(found[1]) if found else None
            except redis.RedisError:
                continue
        return None

    def _watching(self) -> bool:
        try:
            with redis.Redis(host="127.0.0.1", port=self.ports[0], socket_timeout=2) as s:
                master = s.sentinel_master(SERVICE)
                return int(master.get("num-slaves", 0)) >= 1 and int(master.get("num-other-sentinels", 0)) >= 2
        except redis.RedisError:
            return False

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.replica.close()
        self.primary.close()
