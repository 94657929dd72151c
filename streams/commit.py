"""The atomic step: one Lua call writes a batch's outputs and ledger changes and acknowledges its
inputs, after checking the caller still holds the leader's fencing token (ARCHITECTURE.md 1 and 5).

A crash before the call leaves the inputs pending; after it, everything is there. A deposed
leader's call is refused inside Redis, so it cannot write after its successor.

Writes are grouped by key before they are sent: every field a batch sets in one hash goes in one
variadic HSET, every entry it acknowledges in one XACK, every value it pushes to one list in one
RPUSH. The script is atomic, so grouping changes nothing anyone can observe but the cost: a batch
of 256 events is a few dozen Redis calls instead of a thousand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from router.errors import RouterError
from streams.connection import AwaitedReply

# ARGV[1] is the expected leader value ('' skips the check); then a flat list of operations, each an
# opcode, a key index (into KEYS), its own arguments and a count of the items that follow:
#   X key maxlen n data*n        XADD each (MAXLEN ~ maxlen unless 0)
#   H key n (field value)*n      one HSET        D key n field*n        one HDEL
#   R key keep n value*n         one RPUSH, then LTRIM to the last `keep`
#   A key group n id*n           one XACK
# KEYS holds every key touched (Redis Cluster needs them declared, and a hash-tagged prefix puts
# them in one slot).
_SCRIPT = """
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[1])
  if holder ~= ARGV[1] then
    return redis.error_reply('FENCED leadership is now ' .. tostring(holder))
  end
end
local want = {X = 'stream', H = 'hash', D = 'hash', A = 'stream', R = 'list'}
-- where an operation's count sits (offset from the opcode) and how many arguments each item takes
local count_at = {X = 3, H = 2, D = 2, A = 3, R = 3}
local per_item = {X = 1, H = 2, D = 1, A = 1, R = 1}
local CHUNK = 200  -- items per variadic call: unpack() must stay well inside Lua's C stack
local n = #ARGV
-- Redis does not undo a script's earlier writes when a later one fails, so refuse the whole step
-- up front if any key holds the wrong type (the one failure a write here can meet on a healthy
-- server; running out of memory fails the first write, before anything is written).
local i = 2
while i <= n do
  local op = ARGV[i]
  if want[op] == nil then
    return redis.error_reply('BADOP ' .. tostring(op))
  end
  local key = KEYS[tonumber(ARGV[i + 1])]
  local kind = redis.call('TYPE', key)['ok']
  if kind ~= 'none' and kind ~= want[op] then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not a ' .. want[op])
  end
  i = i + count_at[op] + 1 + per_item[op] * tonumber(ARGV[i + count_at[op]])
end
local function chunked(cmd, key, head, first, last, step)
  local s = first
  while s <= last do
    local e = math.min(last, s + CHUNK * step - 1)
    if head == nil then
      redis.call(cmd, key, unpack(ARGV, s, e))
    else
      redis.call(cmd, key, head, unpack(ARGV, s, e))
    end
    s = e + 1
  end
end
i = 2
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  local c = count_at[op]
  local first = i + c + 1
  local last = first + per_item[op] * tonumber(ARGV[i + c]) - 1
  if op == 'X' then
    local maxlen = ARGV[i + 2]
    for j = first, last do
      if maxlen == '0' then
        redis.call('XADD', key, '*', 'data', ARGV[j])
      else
        redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'data', ARGV[j])
      end
    end
  elseif op == 'H' then
    chunked('HSET', key, nil, first, last, 2)
  elseif op == 'D' then
    chunked('HDEL', key, nil, first, last, 1)
  elseif op == 'R' then
    chunked('RPUSH', key, nil, first, last, 1)
    redis.call('LTRIM', key, -tonumber(ARGV[i + 2]), -1)
  elseif op == 'A' then
    chunked('XACK', key, ARGV[i + 2], first, last, 1)
  end
  i = last + 1
end
return 1
"""


class FencedOut(RouterError):
    """This process is no longer the leader: its writes were refused."""


Arg = bytes | str | int


@dataclass(slots=True)
class AtomicStep:
    """Operations collected for one batch, grouped by key, sent as one script call. Within a key
    the order of calls is kept (stream entries, list values); a hash field set or deleted twice
    keeps its last value; acknowledgements go last, so a refused write leaves the inputs pending."""

    leader_key: str
    _streams: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _hashes: dict[str, dict[str, Arg | None]] = field(default_factory=dict)
    _lists: dict[tuple[str, int], list[Arg]] = field(default_factory=dict)
    _acks: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def xadd(self, stream: str, data: bytes, *, maxlen: int = 0) -> None:
        self._streams.setdefault((stream, maxlen), []).append(data)

    def hset(self, key: str, field_name: str, value: bytes | str) -> None:
        self._hashes.setdefault(key, {})[field_name] = value

    def hdel(self, key: str, field_name: str) -> None:
        self._hashes.setdefault(key, {})[field_name] = None

    def xack(self, stream: str, group: str, *entry_ids: str) -> None:
        self._acks.setdefault((stream, group), []).extend(entry_ids)

    def rpush_capped(self, key: str, value: bytes | str, *, keep: int) -> None:
        self._lists.setdefault((key, keep), []).append(value)

    def layout(self) -> tuple[list[str], list[Arg]]:
        """The script's KEYS (the leader key first) and operations, in the order: stream entries,
        hashes, lists, acknowledgements."""
        keys = [self.leader_key]
        index = {self.leader_key: 1}

        def key_no(key: str) -> int:
            found = index.get(key)
            if found is None:
                keys.append(key)
                found = index[key] = len(keys)
            return found

        out: list[Arg] = []
        for (stream, maxlen), entries in self._streams.items():
            out += ["X", key_no(stream), maxlen, len(entries), *entries]
        for key, fields in self._hashes.items():
            sets = [(f, v) for f, v in fields.items() if v is not None]
            deletes = [f for f, v in fields.items() if v is None]
            if sets:
                out += ["H", key_no(key), len(sets)]
                for pair in sets:
                    out += pair
            if deletes:
                out += ["D", key_no(key), len(deletes), *deletes]
        for (key, keep), values in self._lists.items():
            out += ["R", key_no(key), keep, len(values), *values]
        for (stream, group), ids in self._acks.items():
            out += ["A", key_no(stream), group, len(ids), *ids]
        return keys, out

    def __bool__(self) -> bool:
        return bool(self._streams or self._hashes or self._lists or self._acks)


class Committer:
    """Runs atomic steps. `send` hands a step to Redis and `settle` collects its outcome, so the caller
    can route its next batch while Redis runs this one; `commit` does both.

    On a plain Redis client the steps go over a connection of their own while they run
    (`AwaitedScript`), so nothing else waits behind them. On other clients (Redis Cluster) `send`
    runs the step to the end and `settle` has nothing left to do."""

    def __init__(self, r: redis.Redis) -> None:
        self._script = r.register_script(_SCRIPT)
        # a cluster client is not a redis.Redis and has no single pool
        self._pending = AwaitedScript(self._script, r.connection_pool) if isinstance(r, redis.Redis) else None

    @property
    def in_flight(self) -> bool:
        return self._pending is not None and self._pending.awaiting

    def commit(self, step: AtomicStep, *, fence: str | None) -> None:
        """Run the step; raises FencedOut if `fence` no longer matches the leader key."""
        self.send(step, fence=fence)
        self.settle()

    def send(self, step: AtomicStep, *, fence: str | None) -> None:
        """Hand the step to Redis without waiting for it (at most one step in flight)."""
        if not step:
            return
        if self.in_flight:
            raise RuntimeError("a step is already in flight: settle it first")
        keys, args = step.layout()
        if self._pending is None:
            self.run(keys, args, fence=fence)
        else:
            self._pending.send(keys, [fence or "", *args])

    def settle(self) -> None:
        """Wait for the step in flight; raises FencedOut if it was refused, or what Redis answered.
        After a connection error it is unknown whether the step ran: the caller's snapshot tells."""
        if self.in_flight:
            assert self._pending is not None
            self._pending.receive()

    def run(self, keys: list[str], args: list[Arg], *, fence: str | None) -> None:
        """The script on operations already laid out (see _SCRIPT), waiting for its reply."""
        run_fenced(self._script, keys, [fence or "", *args])


class AwaitedScript:
    """A fenced script sent without waiting for its reply (over a pooled connection of its own,
    `AwaitedReply`), the reply taken later. Raises FencedOut when the script refused the caller; if
    Redis no longer knew the script (first use, a restart, SCRIPT FLUSH), nothing ran, and
    `receive` runs it then."""

    def __init__(self, script: Script, pool: redis.ConnectionPool) -> None:
        self._script = script
        self._reply = AwaitedReply(pool)
        self._sent: tuple[list[str], list[Arg]] | None = None

    @property
    def awaiting(self) -> bool:
        return self._sent is not None

    def send(self, keys: list[str], args: list[Arg]) -> None:
        if self._sent is not None:
            raise RuntimeError("a reply is already awaited: receive it first")
        self._reply.send("EVALSHA", self._script.sha, len(keys), *keys, *args)
        self._sent = (keys, args)

    def receive(self) -> Any:
        sent, self._sent = self._sent, None
        if sent is None:
            raise RuntimeError("no reply awaited")
        try:
            return self._reply.receive()
        except redis.exceptions.NoScriptError:
            return run_fenced(self._script, *sent)
        except redis.ResponseError as exc:
            raise_if_fenced(exc)
            raise

    def drop(self) -> None:
        """Give up on the reply (the script may still run)."""
        self._sent = None
        self._reply.drop()


def run_fenced(script: Script, keys: list[str], args: list[Arg]) -> Any:
    """Run a fenced script and wait for its reply; raises FencedOut when it refused the caller."""
    try:
        return script(keys=keys, args=args)
    except redis.ResponseError as exc:
        raise_if_fenced(exc)
        raise


def raise_if_fenced(exc: redis.ResponseError) -> None:
    """Raise FencedOut if Redis refused a fenced script because the caller no longer leads."""
    if str(exc).startswith("FENCED"):
        raise FencedOut(str(exc)) from None
