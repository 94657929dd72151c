"""Redis servers a test owns: one on a private port that can be stopped and restarted with its data,
and a three-node Redis Cluster. Each runs the machine's `redis-server` in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import redis

from support.processes import wait_for


def free_port() -> int:
    """A TCP port nobody listens on now (and, for cluster nodes, whose +10000 bus port is free too)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 < 65536 and _free(port + 10000):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisServer:
    """`redis-server` on 127.0.0.1:<port> with an append-only file in `directory`, so a restart keeps
    every acknowledged write (a restart that loses data is another failure than the one tested)."""

    def __init__(self, directory: Path, *, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.password: str | None = None
        if "--requirepass" in extra:
            self.password = extra[extra.index("--requirepass") + 1]

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=10)

    def start(self) -> RedisServer:
        args = [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
            *self.extra,
        ]
        # a configuration it refuses (an option this build lacks) is reported on stderr, not in the log
        with open(self.directory / "redis.stderr", "wb") as stderr:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr)
        wait_for(self._ready, what=f"redis-server on port {self.port}")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            said = "".join(
                (self.directory / name).read_text(errors="replace")
                for name in ("redis.stderr", "redis.log")
                if (self.directory / name).exists()
            )
            raise AssertionError(f"redis-server exited: {said}")
        try:
            with self.client() as c:
                return bool(c.ping()) and int(c.info("persistence").get("loading", 0)) == 0
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """SIGTERM: redis-server flushes its append-only file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class RedisCluster:
    """Three masters, no replicas, on private ports, joined with `redis-cli --cluster create`."""

    def __init__(self, directory: Path, *, nodes: int = 3) -> None:
        self.servers: list[RedisServer] = []
        for n in range(nodes):
            node_dir = directory / f"node{n}"
            node_dir.mkdir(parents=True, exist_ok=True)
            extra = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node_dir / "nodes.conf"),
                "--cluster-node-timeout",
                "5000",
            )
            self.servers.append(RedisServer(node_dir, extra=extra))

    @property
    def url(self) -> str:
        """Any node will do: the cluster client discovers the others."""
        return f"redis://127.0.0.1:{self.servers[0].port}/0"

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(self._healthy, timeout_s=30, what="the cluster to report cluster_state:ok on every node")
        return self

    def _healthy(self) -> bool:
        for server in self.servers:
            with server.client() as c:
                info = c.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    return False
        return True

    def close(self) -> None:
        for server in self.servers:
            server.close()
