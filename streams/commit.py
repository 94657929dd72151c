"""The atomic step: one Lua call writes a batch's outputs and ledger changes and acknowledges its
inputs, after checking the caller still holds the leader's fencing token (ARCHITECTURE.md 1 and 5).

A crash before the call leaves the inputs pending; after it, everything is there. A deposed
leader's call is refused inside Redis, so it cannot write after its successor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from router.errors import RouterError

# ARGV[1] is the expected leader value ('' skips the check); then a flat list of operations,
# each an opcode followed by its arguments. KEYS holds every key touched (Redis Cluster needs them
# declared, and a hash-tagged prefix puts them in one slot).
_SCRIPT = """
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[1])
  if holder ~= ARGV[1] then
    return redis.error_reply('FENCED leadership is now ' .. tostring(holder))
  end
end
-- Redis does not undo a script's earlier writes when a later one fails, so refuse the whole step
-- up front if any key holds the wrong type (the one failure a write here can meet on a healthy
-- server; running out of memory fails the first write, before anything is written).
local want = {X = 'stream', H = 'hash', D = 'hash', A = 'stream', R = 'list'}
local width = {X = 4, H = 4, D = 3, A = 4, R = 4}
local i = 2
local n = #ARGV
local checked = {}
while i <= n do
  local op = ARGV[i]
  if want[op] == nil then
    return redis.error_reply('BADOP ' .. tostring(op))
  end
  local key = KEYS[tonumber(ARGV[i + 1])]
  if not checked[key] then  -- one TYPE per key, not per write: a batch writes few keys many times
    checked[key] = true
    local kind = redis.call('TYPE', key)['ok']
    if kind ~= 'none' and kind ~= want[op] then
      return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not a ' .. want[op])
    end
  end
  i = i + width[op]
end
i = 2
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  if op == 'X' then
    if ARGV[i + 2] == '0' then
      redis.call('XADD', key, '*', 'data', ARGV[i + 3])
    else
      redis.call('XADD', key, 'MAXLEN', '~', ARGV[i + 2], '*', 'data', ARGV[i + 3])
    end
    i = i + 4
  elseif op == 'H' then
    redis.call('HSET', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'D' then
    redis.call('HDEL', key, ARGV[i + 2])
    i = i + 3
  elseif op == 'A' then
    redis.call('XACK', key, ARGV[i + 2], ARGV[i + 3])
    i = i + 4
  elseif op == 'R' then
    redis.call('RPUSH', key, ARGV[i + 2])
    redis.call('LTRIM', key, -tonumber(ARGV[i + 3]), -1)
    i = i + 4
  else
    return redis.error_reply('BADOP ' .. tostring(op))
  end
end
return 1
"""


class FencedOut(RouterError):
    """This process is no longer the leader: its writes were refused."""


@dataclass(slots=True)
class AtomicStep:
    """Operations collected for one batch, sent as one script call."""

    leader_key: str
    keys: list[str] = field(default_factory=list)
    args: list[bytes | str | int] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._key(self.leader_key)

    def _key(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index

    def xadd(self, stream: str, data: bytes, *, maxlen: int = 0) -> None:
        self.args += ["X", self._key(stream), maxlen, data]

    def hset(self, key: str, field_name: str, value: bytes | str) -> None:
        self.args += ["H", self._key(key), field_name, value]

    def hdel(self, key: str, field_name: str) -> None:
        self.args += ["D", self._key(key), field_name]

    def xack(self, stream: str, group: str, entry_id: str) -> None:
        self.args += ["A", self._key(stream), group, entry_id]

    def rpush_capped(self, key: str, value: bytes | str, *, keep: int) -> None:
        self.args += ["R", self._key(key), value, keep]

    def __len__(self) -> int:
        return len(self.args)


class Committer:
    def __init__(self, r: redis.Redis) -> None:
        self._script = r.register_script(_SCRIPT)

    def commit(self, step: AtomicStep, *, fence: str | None) -> None:
        """Run the step; raises FencedOut if `fence` no longer matches the leader key."""
        if not step.args:
            return
        try:
            self._script(keys=step.keys, args=[fence or "", *step.args])
        except redis.ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise FencedOut(str(exc)) from None
            raise
