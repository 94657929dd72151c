"""A command in the Redis protocol (RESP): an array of bulk strings, packed in one call.

The atomic step is one command of a thousand or more arguments per batch. hiredis packs each
argument through a formatted length (`sprintf`) and two intermediate copies, about 1,700
instructions an argument: a tenth of the compiled worker's work per event. `pack_resp` writes an
argument as its length header (precomputed for the usual sizes) and its bytes, joined once; compiled
by mypyc it takes a fraction of that, but run as Python its loop costs more than hiredis's C, so
`pack_command` is whichever is quicker as this module runs (docs/benchmarks.md). Both encode as
redis-py does by default: text as UTF-8, numbers as their repr.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import hiredis
from redis.exceptions import DataError

CRLF: Final = b"\r\n"
_PREFIXED: Final = 4096  # bulk-string length headers precomputed for lengths below this
_LENGTHS: Final = [b"$%d" % n for n in range(_PREFIXED)]


def pack_resp(args: Sequence[object]) -> bytes:
    """`args` as one RESP command: `*<count>`, then `$<length>` and the bytes of each, every
    piece followed by CRLF (hence one join on CRLF, with an empty last piece)."""
    pieces: list[bytes] = [b"*%d" % len(args)]
    for arg in args:
        data = arg if type(arg) is bytes else _encoded(arg)  # exact type: the common case, no call
        size = len(data)
        pieces.append(_LENGTHS[size] if size < _PREFIXED else b"$%d" % size)
        pieces.append(data)
    pieces.append(b"")
    return CRLF.join(pieces)


def _encoded(arg: object) -> bytes:
    if isinstance(arg, bytes):
        return bytes(arg)
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    # as redis-py's encoder words it; bool included (it would be ambiguous on the wire)
    raise DataError(f"Invalid input of type: '{type(arg).__name__}'. Convert to a bytes, string, int or float first.")


def pack_command(args: tuple[object, ...]) -> bytes:
    """`args` as one RESP command, packed the quicker way for how this module runs; DataError for
    an argument redis-py would refuse."""
    if _COMPILED:
        return pack_resp(args)
    try:
        packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub declares a 1-tuple
    except TypeError as exc:
        raise DataError(str(exc)) from None
    return packed


_COMPILED: Final = __file__.endswith((".so", ".pyd"))
