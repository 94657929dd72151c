"""`--replica` of bench.throughput: a primary and a replica of it (`redis-server --replicaof`), each
on a private port of 127.0.0.1 in a temporary directory, for the run to use instead of `--redis-url`;
with `--min-replicas N` the workers publish only what N replicas have (ROUTER_MIN_REPLICAS)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server(port: int, home: str, *extra: str) -> subprocess.Popen[bytes]:
    args = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", home, "--repl-diskless-sync-delay", "0", *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_linked(replica_port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=replica_port, socket_timeout=1) as r:
            if r.info("replication").get("master_link_status") == "up":
                return
        time.sleep(0.05)
    raise RuntimeError("the replica never linked to the primary")


@contextlib.contextmanager
def primary_with_replica(min_replicas: int) -> Iterator[str]:
    """The primary's URL while both servers run; ROUTER_MIN_REPLICAS set for the workers started."""
    primary_port, replica_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as home:
        procs = [_server(primary_port, home)]
        try:
            procs.append(_server(replica_port, home, "--replicaof", "127.0.0.1", str(primary_port)))
            _wait_linked(replica_port)
            os.environ["ROUTER_MIN_REPLICAS"] = str(min_replicas)
            yield f"redis://127.0.0.1:{primary_port}/0"
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(timeout=10)
