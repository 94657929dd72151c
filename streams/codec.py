"""JSON encoding of stream entries: one field `data` holding one UTF-8 JSON object (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

FIELD = "data"


def encode(doc: Any) -> bytes:
    return orjson.dumps(doc)


def decode(raw: bytes | str) -> Any:
    return orjson.loads(raw)


def as_text(value: Any) -> str:
    """A reply value (entry id, key, field) as text: redis-py gives bytes unless told to decode."""
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_data(fields: dict[Any, Any]) -> bytes | None:
    """The `data` field of a stream entry as read by redis-py (bytes keys), or None if absent."""
    value = fields.get(FIELD.encode(), fields.get(FIELD))
    return None if value is None else as_bytes(value)


def as_bytes(value: Any) -> bytes:
    """A reply value as bytes (text when the client decodes replies)."""
    return value if isinstance(value, bytes) else str(value).encode()


def decoded_hash(raw: dict[Any, Any]) -> dict[str, Any]:
    """A hash of JSON values (HGETALL's reply) as text keys and documents; a field whose name or value
    does not decode (a hash edited by hand) is left out, for the reader to do without."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key.decode() if isinstance(key, bytes) else str(key)] = orjson.loads(value)
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            continue
    return out
