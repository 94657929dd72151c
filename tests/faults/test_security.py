"""`rediss://` with a password: the worker connects over TLS, authenticates, routes, and never
prints the password (not in its logs, not in the settings' repr). The test's redis-server has TLS
built in (the machine's Redis 7 links OpenSSL); it gets a throwaway CA and certificate."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis
from support.processes import RouterProcess, wait_for
from support.servers import RedisServer, free_port

from streams.clients import Dispatcher, Slot
from streams.connection import connect, mask_url
from streams.keys import Keys
from worker.settings import load_settings

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PASSWORD = f"pw-{uuid.uuid4().hex}"


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    names = ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
    ca_key, ca, key, csr, cert = (directory / n for n in names)
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(ca)],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(csr)],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-days", "2", "-extfile", str(ext), "-out", str(cert)],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(step, check=True, capture_output=True, timeout=60)
    return ca, cert, key


class TlsRedis(RedisServer):
    """TLS only (the plain port is off), with a password."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        ca, cert, key = _certificates(directory)
        self.ca = ca
        self.tls_port = free_port()
        extra = ("--tls-port", str(self.tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                 "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", "--requirepass", PASSWORD)  # fmt: skip
        super().__init__(directory, extra=extra)
        self.port = 0  # no plain-text port at all

    @property
    def url(self) -> str:
        return f"rediss://:{PASSWORD}@127.0.0.1:{self.tls_port}/0?ssl_ca_certs={self.ca}"

    def client(self) -> redis.Redis:
        return connect(self.url)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    server = TlsRedis(tmp_path / "tls")
    try:
        server.start()
    except AssertionError as exc:  # a redis-server built without TLS refuses --tls-port
        said = str(exc)
        if "'tls-port" not in said or "Bad directive" not in said:  # any other failure is a failure
            raise
        pytest.skip(f"redis-server has no TLS support: {exc}")
    yield server
    server.close()


def test_settings_and_urls_never_show_the_password() -> None:
    url = f"rediss://:{PASSWORD}@redis.example:6380/0"
    settings = load_settings({"REDIS_URL": url, "DATABASE_URL": f"postgresql+psycopg://u:{PASSWORD}@db/x"})
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.masked())
    assert PASSWORD not in mask_url(f"unix:///tmp/redis.sock?db=0&password={PASSWORD}")
    assert mask_url(url) == "rediss://:***@redis.example:6380/0"


def test_worker_over_tls_with_a_password_routes_and_never_logs_it(
    tls_redis: TlsRedis, tmp_path: Path, start_worker: Callable[..., RouterProcess]
) -> None:
    r = tls_redis.client()
    assert r.ping()
    with pytest.raises(redis.AuthenticationError):
        connect(tls_redis.url.replace(PASSWORD, "wrong")).ping()
    prefix = f"tls:{uuid.uuid4().hex[:8]}:"
    keys = Keys(prefix)
    worker = start_worker(url=tls_redis.url, env={"ROUTER_PREFIX": prefix, "ROUTER_LOG_LEVEL": "debug"})
    Slot(r, slot_id="h0", model="haiku", keys=keys).free()
    Dispatcher(r, keys).publish_task("t-tls", priority=50)
    wait_for(lambda: r.xlen(keys.assign("h0")) == 1, what="the task assigned over TLS")
    assert orjson.loads(r.xrange(keys.assign("h0"))[0][1][b"data"])["task_id"] == "t-tls"
    tls_redis.stop()  # an outage logs errors too: they must not carry the password either
    wait_for(lambda: "redis unavailable" in worker.log(), what="the worker to notice the outage")
    assert worker.terminate() == 0
    log = worker.log()
    assert "rediss://:***@127.0.0.1" in log  # the settings are logged, masked
    assert PASSWORD not in log
