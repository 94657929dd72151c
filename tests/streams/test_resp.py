"""streams/resp.py: both ways of packing a command send exactly what redis-py would."""

from __future__ import annotations

import hiredis
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import PythonRespSerializer
from redis.exceptions import DataError

from streams.resp import _LENGTHS, _PREFIXED, pack_command, pack_resp

_REDIS_PY = PythonRespSerializer(6000, redis.Connection().encoder.encode)

args_strategy = st.lists(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
    ),
    max_size=40,
)


def _redis_py(args: tuple[object, ...]) -> bytes:
    return b"".join(_REDIS_PY.pack("EVALSHA", *args))


@given(args_strategy)
def test_pack_resp_sends_the_bytes_redis_py_and_hiredis_send(args: list[object]) -> None:
    command = ("EVALSHA", *args)
    assert pack_resp(command) == _redis_py(tuple(args)) == hiredis.pack_command(command)
    assert pack_command(command) == pack_resp(command)


@pytest.mark.parametrize("size", [0, 1, _PREFIXED - 1, _PREFIXED, 70_000])
def test_arguments_either_side_of_the_precomputed_headers_are_sized_right(size: int) -> None:
    command = ("SET", "k", b"v" * size)
    assert pack_resp(command) == hiredis.pack_command(command)
    assert pack_resp(command).endswith(b"$%d\r\n%s\r\n" % (size, b"v" * size))


def test_the_precomputed_headers_are_the_lengths_they_stand_for() -> None:
    assert all(header == b"$%d" % n for n, header in enumerate(_LENGTHS))


def test_text_is_sent_as_utf8_and_bytes_subclasses_as_their_bytes() -> None:
    class Tagged(bytes):
        pass

    packed = pack_resp(("SET", "cl\u00e9", Tagged(b"\x00\xff")))
    assert packed == b"*3\r\n$3\r\nSET\r\n$4\r\ncl\xc3\xa9\r\n$2\r\n\x00\xff\r\n"


@pytest.mark.parametrize("bad", [None, True, ["x"], {"k": "v"}, b"x".decode])
@pytest.mark.parametrize("pack", [pack_resp, pack_command])
def test_an_argument_redis_py_refuses_is_a_data_error(pack: object, bad: object) -> None:
    with pytest.raises(DataError):
        pack(("SET", "k", bad))  # type: ignore[operator]
