"""Redis connections with timeouts that suit blocking stream reads; a single server or a cluster.

`REDIS_URL` picks all three: `redis://` or `rediss://` (TLS) for one server;
`redis+sentinel://host:26379,host2:26379/mymaster/0` (or `rediss+sentinel://`) for the primary that
Redis Sentinel names, followed across a failover; and the query parameter
`cluster=true` (say `redis://node-a:7000/0?cluster=true`) for Redis Cluster, where the URL names
any one node and the client discovers the rest. On a cluster, every key of one router must hash to
one slot so the atomic step's Lua call can touch them together: give `ROUTER_PREFIX` a hash tag,
such as `router:{pool-a}:` (see `cluster_prefix_problem`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from router.errors import ConfigError, RouterError
from streams.resp import pack_command

# Extra socket time beyond the longest BLOCK, so a blocking read never hits the socket timeout
# (redis-py would retry it and turn one slow read into a long hang).
SOCKET_MARGIN_S = 5.0
CLUSTER_PARAM = "cluster"
_TRUE = {"1", "true", "yes", "on"}


def connect(url: str, *, block_ms: int = 1000, **overrides: Any) -> redis.Redis:
    """A client for `url`. Commands are never retried inside redis-py: a script call whose reply
    was lost may have run, and running it again would write a batch twice. The callers' loops
    retry with backoff after rebuilding their state instead. A URL redis-py cannot use raises
    ConfigError."""
    plain_url, cluster = split_cluster_flag(url)
    check_redis_url(plain_url)
    options: dict[str, Any] = {
        "socket_timeout": block_ms / 1000 + SOCKET_MARGIN_S,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), 0),
    }
    options.update(overrides)
    if is_sentinel_url(plain_url):
        return _sentinel_master(plain_url, options)
    if cluster:
        # RedisCluster speaks the same commands for keys in one slot; the callers use no others.
        return cast(redis.Redis, RedisCluster.from_url(plain_url, **options))
    return redis.Redis.from_url(plain_url, **options)


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


@dataclass(frozen=True, slots=True, kw_only=True)
class SentinelTarget:
    """What a `redis+sentinel://[:password@]host:port,host2:port/service/db?options` URL names.
    The password is the primary's (and the Sentinels' too when `sentinel_password` is not given);
    `rediss+sentinel://` connects to the primary over TLS, with the `ssl_*` options of the query."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    username: str | None
    options: tuple[tuple[str, str], ...]
    tls: bool


def parse_sentinel_url(url: str) -> SentinelTarget:
    """ConfigError, naming the URL with its password masked, when it is not a usable Sentinel URL."""
    try:
        parts = urlsplit(url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        sentinels = tuple(_host_port(item) for item in hosts.split(","))
        service, _, db = parts.path.strip("/").partition("/")
        if not service:
            raise ValueError("it names no service (the master's name): redis+sentinel://host:26379/mymaster/0")
        username, _, password = userinfo.partition(":")
        return SentinelTarget(
            sentinels=sentinels,
            service=service,
            db=int(db or 0),
            password=unquote(password) or None,
            username=unquote(username) or None,
            options=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            tls=parts.scheme.lower() == "rediss+sentinel",
        )
    except ValueError as exc:
        raise _invalid_url(url, exc) from None


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
    host = host.strip("[]")
    if not host:
        raise ValueError(f"a Sentinel address is empty: {item!r}")
    number = int(port) if port else SENTINEL_PORT
    if not 0 < number < 65536:
        raise ValueError(f"port {number} is out of range")
    return host, number


def _sentinel_master(url: str, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary the Sentinels name now. Its pool asks them again for each new
    connection, and a connection to a node that is no longer the primary is refused: after a
    failover, the next command (the callers' loops retry) reaches the new primary."""
    target = parse_sentinel_url(url)
    query = dict(target.options)
    sentinel_password = query.pop("sentinel_password", None) or target.password
    master: dict[str, Any] = {"db": target.db, "password": target.password, "username": target.username}
    if target.tls:
        master.update(ssl=True, **{name: value for name, value in query.items() if name.startswith("ssl_")})
    sentinel = Sentinel(
        list(target.sentinels),
        sentinel_kwargs={"password": sentinel_password, "socket_timeout": options["socket_connect_timeout"]},
        **options,
    )
    return cast(redis.Redis, sentinel.master_for(target.service, **master))


def check_redis_url(url: str) -> None:
    """Raise ConfigError, naming the URL with its password masked, unless redis-py can parse it
    (scheme, port, query options): a bad setting should be one clear message, not a ValueError
    from deep inside the client."""
    if is_sentinel_url(url):
        parse_sentinel_url(url)
        return
    try:
        parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise _invalid_url(url, exc) from None


def _invalid_url(url: str, exc: ValueError) -> ConfigError:
    return ConfigError(f"Redis URL {mask_url(url)!r} is not valid: {exc}")


def split_cluster_flag(url: str) -> tuple[str, bool]:
    """The URL without its `cluster` query parameter, and whether that parameter asked for one.
    ConfigError if the URL cannot even be split into its parts (an unclosed IPv6 bracket, say)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise _invalid_url(url, exc) from None
    if not parts.query:
        return url, False
    query = parse_qsl(parts.query, keep_blank_values=True)
    flags = [value for name, value in query if name == CLUSTER_PARAM]
    if not flags:
        return url, False
    rest = urlencode([(name, value) for name, value in query if name != CLUSTER_PARAM])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), flags[-1].lower() in _TRUE


def is_cluster_url(url: str) -> bool:
    return split_cluster_flag(url)[1]


def cluster_prefix_problem(url: str, prefix: str) -> str | None:
    """Why `prefix` cannot work on the Redis at `url` (None if it can): on a cluster the prefix
    needs a non-empty hash tag, so all of a router's keys land in one slot."""
    if not is_cluster_url(url):
        return None
    start = prefix.find("{")
    end = prefix.find("}", start + 1) if start >= 0 else -1
    if start < 0 or end <= start + 1:
        return f"ROUTER_PREFIX={prefix!r} has no hash tag; on Redis Cluster use one such as 'router:{{pool-a}}:'"
    return None


def mask_url(url: str) -> str:
    """The URL with any password (in the authority or a `password` query parameter) replaced by
    ***, for logs and reprs. A URL with no password comes back unchanged (rebuilding it would
    drop the empty authority of `sqlite:////abs/path` or `unix:///x.sock`)."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return _mask_unsplittable(url)
    has_query_password = any(name == "password" for name, _ in query)
    if parts.password is None and not has_query_password:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        # Raw text rather than .hostname/.port: those lower-case, drop IPv6 brackets, or raise on a bad port.
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    masked = parts.query
    if has_query_password:
        masked = urlencode([(n, "***" if n == "password" else v) for n, v in query], safe="*")
    if netloc or not url[len(parts.scheme) :].startswith("://"):
        return urlunsplit((parts.scheme, netloc, parts.path, masked, parts.fragment))
    # urlunsplit drops an empty authority's `//` for schemes it does not know (unix://, sqlite://)
    return f"{parts.scheme}://" + urlunsplit(("", "", parts.path, masked, parts.fragment))


def _mask_unsplittable(url: str) -> str:
    """A URL urlsplit refuses is shown as it is only when it cannot hold a password."""
    if "@" in url or "password" in url.lower():
        return "<unparseable url>"
    return url


class AwaitedReply:
    """Commands sent without waiting, their replies read later, over a connection taken from the
    pool for them and given back once the replies are read. Taking it afresh each time lets the
    pool replace a connection the server closed while it sat idle (Redis `timeout`), and nothing
    else ever reads from it while the replies are awaited."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self._pool = pool
        self._conn: Any = None
        self._count = 0

    def send(self, *args: Any) -> None:
        self.send_all([args])

    def send_all(self, commands: list[tuple[Any, ...]]) -> None:
        """Several commands in one write, run by Redis one after the other on this connection (so
        a WAIT among them waits for the writes of those before it)."""
        if self._conn is not None:
            raise RuntimeError("a reply is already awaited: receive it first")
        conn: Any = self._pool.get_connection()
        try:
            _send(conn, *commands)
        except BaseException:
            _discard(self._pool, conn)
            raise
        self._conn = conn
        self._count = len(commands)

    def receive(self) -> Any:
        """The reply; an error reply is raised as redis-py raises it. The connection goes back to
        the pool either way, unless it failed (then it is closed)."""
        reply = self.receive_all()[-1]
        if isinstance(reply, redis.ResponseError):
            raise reply
        return reply

    def receive_all(self) -> list[Any]:
        """Every command's reply, in order; an error reply is in the list as the ResponseError
        redis-py makes of it (the connection itself is fine). Any other failure is raised."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("no reply awaited")
        replies: list[Any] = []
        try:
            for _ in range(self._count):
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            _discard(self._pool, conn)
            raise
        self._pool.release(conn)
        return replies

    def drop(self) -> None:
        """Give up on the awaited reply: the connection is closed (the command may still have run)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            _discard(self._pool, conn)


def _send(conn: Any, *commands: tuple[Any, ...]) -> None:
    """`conn.send_command(*args)` for each command, packed here in one pass (streams.resp) and
    written at once: redis-py would first copy the arguments one by one in Python, then pack each
    through hiredis, which for an atomic step's thousand arguments costs more than routing some of
    its events."""
    conn.send_packed_command([pack_command(args) for args in commands])


def _discard(pool: redis.ConnectionPool, conn: Any) -> None:
    conn.disconnect()
    pool.release(conn)


# Failures that are Redis's side of things (unreachable, out of memory, read-only replica, busy,
# permissions taken away, a key of the wrong type that someone created by hand) rather than
# anything in the events routed:
# a worker whose writes fail for these reasons does not count the retries against the events.
class NotReplicated(RouterError):
    """A write did not reach the replicas asked for (`ROUTER_MIN_REPLICAS`) within the timeout:
    what depends on it is not published until it has."""


_REDIS_SIDE = (
    NotReplicated,
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.NoPermissionError,
)
_REDIS_SIDE_CODES = ("BUSY ", "MISCONF ", "NOREPLICAS ", "WRONGTYPE ")


def refused_by_redis(exc: BaseException) -> bool:
    """True for a failure on Redis's side (see above), False for anything else, including an error
    reply that a bug of ours would cause (a malformed command, say)."""
    if isinstance(exc, _REDIS_SIDE):
        return True
    return isinstance(exc, redis.ResponseError) and str(exc).startswith(_REDIS_SIDE_CODES)
