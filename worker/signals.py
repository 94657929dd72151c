"""Graceful stop: the first SIGTERM or SIGINT finishes the batch; the second exits at once."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType


class StopFlag:
    def __init__(self) -> None:
        self.event = threading.Event()
        self._signals = 0

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def stop(self) -> None:
        self.event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep that a stop request interrupts; True if stopping."""
        return self.event.wait(seconds)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled on the main thread; embedded runs use stop()
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            os._exit(128 + signum)
        self.event.set()
