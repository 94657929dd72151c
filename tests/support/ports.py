"""Local TCP ports for tests: one free to listen on, or one that refuses connections."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A port of 127.0.0.1 nothing listens on: bound by the OS's choice, then closed again, so it is
    free to listen on and, until something does, refuses connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
