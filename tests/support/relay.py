"""A TCP relay on 127.0.0.1 that the test controls: it forwards the target's bytes to the client
after a delay (a lagging replication link: the replica, the client here, receives the primary's
stream late; its acknowledgements go back at once), can hold them back entirely (a cut link: nothing is lost, it is
delivered once released), and can be pointed at another target (what a Sentinel-aware client or a
virtual IP does after a failover: new connections go to the new primary, old ones are closed)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from support.servers import free_port

CHUNK = 65_536


@dataclass(slots=True)
class _Pipe:
    """One direction of one relayed connection: bytes read, held until their time, then written."""

    source: socket.socket
    sink: socket.socket
    relay: Relay
    delayed: bool
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    ready: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        try:
            while data := self.source.recv(CHUNK):
                with self.ready:
                    lag_s = self.relay.delay_s if self.delayed else 0.0
                    self.queue.append((time.monotonic() + lag_s, data))
                    self.ready.notify()
        except OSError:
            pass
        with self.ready:
            self.closed = True
            self.ready.notify()

    def _write(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.queue and not self.closed:
                        self.ready.wait(0.05)
                    if not self.queue:
                        break
                    due, data = self.queue[0]
                wait_s = due - time.monotonic()
                if wait_s > 0 or self.relay.held:
                    time.sleep(max(min(wait_s, 0.05), 0.001))
                    continue
                with self.ready:
                    self.queue.popleft()
                self.sink.sendall(data)
        except OSError:
            pass
        _close(self.sink, self.source)


class Relay:
    """Listens on a port of its own; each connection is relayed to `target_port`."""

    def __init__(self, target_port: int, *, delay_s: float = 0.0) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.delay_s = delay_s
        self.held = False  # True: bytes wait in the relay (the link is cut) until released
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections += [client, upstream]
            _Pipe(client, upstream, self, delayed=False).start()
            _Pipe(upstream, client, self, delayed=True).start()

    def point_at(self, target_port: int) -> None:
        """New connections go to `target_port`; those open now are closed (their peer is gone)."""
        self.target_port = target_port
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        _close(*connections)

    def close(self) -> None:
        self._stopped = True
        self._server.close()
        self.drop_connections()


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
