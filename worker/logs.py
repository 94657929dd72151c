"""structlog set-up: JSON lines through orjson. At the default level (info) the worker logs what
it does (starting, leading, restoring, backing off, stopping) and every rejected input; one line
per decision only at debug, as the decision stream already carries each one in full."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


class _CurrentStderr:
    """Standard error as it is at each write, not as it was at configure(): loggers are cached on
    first use, and a stream bound then (a test's captured one, since closed) would outlive it."""

    def write(self, data: bytes) -> int:
        return sys.stderr.buffer.write(data)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", *, json: bool = True) -> None:
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if json:
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(_CurrentStderr())  # type: ignore[arg-type]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=factory,  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
