"""Every Lua script the router runs in Redis, each with what its KEYS and ARGV hold.

A script is the only way to make several commands one atomic step, or a check and a write one
compare-and-set, so these are where the invariants of ARCHITECTURE.md are enforced inside Redis:
the fencing token (1 and 5), the ordered claim of new entries, the lease, the trim that never
drops an unacknowledged record. They are kept together so a reader sees every piece of Lua in one
page and the keys each one touches (Redis Cluster needs every key declared in KEYS).
The modules that run them register them with `r.register_script(script.source)`; tests check
that each script's documentation matches the KEYS and ARGV its source reads.

An argument documented with a leading `...` stands for the rest of them (a variadic tail).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class LuaScript:
    """A Redis script: its source, and what each of its KEYS and ARGV holds, in order."""

    name: str
    keys: tuple[str, ...]
    argv: tuple[str, ...]
    returns: str
    source: str


ATOMIC_STEP = LuaScript(
    name="atomic step",
    keys=(
        "the leader key, read for the fencing check (first even when the check is skipped)",
        "...every key the operations touch, each named once; an operation refers to its key by index",
    ),
    argv=(
        "the leader value the caller expects (its fence); '' skips the check",
        "...the operations, flat: each an opcode, a key index into KEYS, its own arguments and a count"
        " of the items that follow: `X key maxlen n data*n` XADD each (MAXLEN ~ maxlen unless 0);"
        " `H key n (field value)*n` one HSET; `D key n field*n` one HDEL; `R key keep n value*n` one"
        " RPUSH, then LTRIM to the last `keep` (0: no trim); `A key group n id*n` one XACK",
    ),
    returns="1; an error FENCED <holder> when the leader key holds another value, BADOP <op> for an"
    " unknown opcode, WRONGTYPE <key> ... before any write when a key holds the wrong type",
    source="""
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
    if ARGV[i + 2] ~= '0' then
      redis.call('LTRIM', key, -tonumber(ARGV[i + 2]), -1)
    end
  elseif op == 'A' then
    chunked('XACK', key, ARGV[i + 2], first, last, 1)
  end
  i = last + 1
end
return 1
""",
)

# The fencing check of the scripts that take the leader key as KEYS[1] and its holder as ARGV[1].
_REFUSE_UNLESS_LEADER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED leadership is now ' .. tostring(redis.call('GET', KEYS[1])))
end
"""

# With ROUTER_MIN_REPLICAS >= 1 the atomic step puts what consumers read (assignments, status,
# decision records, dead letters, usage) in an outbox list instead of their streams; once WAIT has
# seen the step on enough replicas, this script moves the outbox into the streams and clears it in
# one atomic call. Redis replicates a script's writes as one transaction, so on any node the
# entries are either still in the outbox or in their streams, never both: publishing what a node's
# outbox holds is idempotent, and a new leader after a failover publishes what the old one could
# not. The stream names come from the outbox itself; on Redis Cluster they share the prefix's hash
# tag, hence the outbox's slot.
PUBLISH_OUTBOX = LuaScript(
    name="publish outbox",
    keys=("the leader key", "the outbox list: (stream, maxlen, data) triples, flat, oldest first"),
    argv=("the leader value the caller holds (its fence)",),
    returns="how many entries were published; an error FENCED <holder> when the caller no longer leads,"
    " WRONGTYPE <key> ... before any write when a stream named in the outbox is not a stream",
    source=_REFUSE_UNLESS_LEADER
    + """
local items = redis.call('LRANGE', KEYS[2], 0, -1)
-- as in the atomic step: refuse before the first write rather than publish half of the outbox
local checked = {}
for j = 1, #items - 2, 3 do
  local key = items[j]
  if checked[key] == nil then
    local kind = redis.call('TYPE', key)['ok']
    if kind ~= 'none' and kind ~= 'stream' then
      return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. kind .. ', not a stream')
    end
    checked[key] = true
  end
end
for j = 1, #items - 2, 3 do
  if items[j + 1] == '0' then
    redis.call('XADD', items[j], '*', 'data', items[j + 2])
  else
    redis.call('XADD', items[j], 'MAXLEN', '~', items[j + 1], '*', 'data', items[j + 2])
  end
end
redis.call('DEL', KEYS[2])
return #items / 3
""",
)

# Claim new entries only while holding the lease: a deposed leader that wakes inside its loop can
# then never take entries out of the stream's order (its successor would see later ones first).
# XREADGROUP may not block inside a script; when nothing is new, the script returns the stream's
# last id so the caller can wait on it with a plain XREAD BLOCK, which claims nothing.
FENCED_READ = LuaScript(
    name="fenced read",
    keys=("the leader key", "the stream read"),
    argv=("the leader value the caller holds (its fence)", "the group", "the consumer", "at most this many entries"),
    returns="{1, entries claimed (each {id, {field, value, ...}})} when anything was new; {0, the stream's"
    " last id, '0-0' when empty} when nothing was; an error FENCED <holder> when the caller no longer leads",
    source=_REFUSE_UNLESS_LEADER
    + """
local got = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], '>')
if got then
  return {1, got[1][2]}
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then
  return {0, '0-0'}
end
return {0, last[1][1]}
""",
)

# Renew or release the lease only if we still hold it (compare-and-set inside Redis).
RENEW_LEASE = LuaScript(
    name="renew lease",
    keys=("the leader key",),
    argv=("the lease value the caller holds", "the new time to live, in milliseconds"),
    returns="1 when renewed; 0 when another process holds the lease or nobody does",
    source="""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
""",
)

RELEASE_LEASE = LuaScript(
    name="release lease",
    keys=("the leader key",),
    argv=("the lease value the caller holds",),
    returns="1 when released; 0 when the caller no longer held it",
    source="""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""",
)

# Deletes, atomically, the oldest entries the group has acknowledged, keeping the newest `keep`
# for ops. Acknowledged means: delivered (at or before the group's last-delivered id) and not
# pending; so the bound is the smallest pending id (exclusive), else the last-delivered id.
# At most ARGV[3] entries a call, so one call never blocks Redis for long.
TRIM_ACKNOWLEDGED = LuaScript(
    name="trim acknowledged",
    keys=("the stream trimmed",),
    argv=(
        "the group whose acknowledgements bound the trim",
        "entries always kept (the newest)",
        "at most this many deleted",
    ),
    returns="how many entries were deleted",
    source="""
local n = redis.call('XLEN', KEYS[1])
local keep = tonumber(ARGV[2])
if n <= keep then return 0 end
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered = nil, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  if name == ARGV[1] then last = delivered end
end
if last == nil then return 0 end
local upper = last
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if tonumber(pending[1]) > 0 then upper = '(' .. pending[2] end
local old = redis.call('XRANGE', KEYS[1], '-', upper, 'COUNT', math.min(n - keep, tonumber(ARGV[3])))
if #old == 0 then return 0 end
redis.call('XTRIM', KEYS[1], 'MAXLEN', n - #old)
return #old
""",
)

ALL = (ATOMIC_STEP, PUBLISH_OUTBOX, FENCED_READ, RENEW_LEASE, RELEASE_LEASE, TRIM_ACKNOWLEDGED)
