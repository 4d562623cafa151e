"""Redis over TLS: every client verifies the server against REDIS_CA_CERT, `redis://` is plain.

Memorystore is played by the embedded Valkey behind a TLS front on 127.0.0.1 (the Valkey build
has no TLS of its own): a test CA signs the front's certificate the way Memorystore issues its
own (the IP address as the common name, no subject alternative name). A second CA, unrelated,
stands for a wrong or forged one.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio
import socketio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlroom import settings
from controlroom.adapters import ratelimit, redis_tls
from controlroom.adapters.emitter import SocketIOPublisher, company_channel
from controlroom.dev.stack.process import free_port
from controlroom.dev.stack.valkey import EmbeddedValkey
from controlroom.errors import SettingsError

pytestmark = pytest.mark.integration


# --- certificates ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


def authority(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    return Authority(key, builder.sign(key, hashes.SHA256()))


def server_files(ca: Authority, folder: Path, *, san: bool) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by `ca` (Memorystore's shape unless `san`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _validity(
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca.key, hashes.SHA256())
    cert_path, key_path = folder / "server.pem", folder / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# --- the TLS front ---------------------------------------------------------------------------


class TlsFront:
    """TLS on 127.0.0.1:`port`, each connection piped to the plain Valkey at `upstream`."""

    def __init__(self, cert: Path, key: Path, upstream: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.port = free_port()
        self.handshake_failures = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _handshake_failed(self, _: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        self.handshake_failures += 1  # a refused client: expected in these tests, not logged

    async def _start(self) -> None:
        self._loop.set_exception_handler(self._handshake_failed)
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context
        )

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            pipes = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pipes:  # connections still open end here
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            await asyncio.wait_for(self._server.wait_closed(), 5)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass(frozen=True)
class Setup:
    valkey: EmbeddedValkey
    memorystore: TlsFront  # Memorystore's shape: CN = IP, no SAN
    public: TlsFront  # a certificate with the IP in its SAN, as a public one would name it
    ca: Authority  # signed both fronts' certificates
    other_ca: Authority
    folder: Path
    plain: redis.Redis  # straight to Valkey: what the TLS clients wrote, seen from behind

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.memorystore.port}/0"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("redis-tls")
    valkey = EmbeddedValkey(folder / "valkey", free_port())
    valkey.start()
    fronts: list[TlsFront] = []
    try:
        ca, other = authority("Test Memorystore CA"), authority("Someone else's CA")
        for san in (False, True):
            (folder / f"san-{san}").mkdir()
            front = TlsFront(*server_files(ca, folder / f"san-{san}", san=san), valkey.port)
            front.start()
            fronts.append(front)
        plain = redis.Redis.from_url(valkey.url, socket_connect_timeout=2)
        try:
            yield Setup(valkey, fronts[0], fronts[1], ca, other, folder, plain)
        finally:
            plain.close()
    finally:
        for front in fronts:
            front.stop()
        valkey.stop()


def _subscribed(plain: redis.Redis, channel: str) -> redis.client.PubSub:
    pubsub = plain.pubsub()
    pubsub.subscribe(channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    return pubsub


def _next_message(pubsub: redis.client.PubSub) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            return message  # type: ignore[no-any-return]
    raise AssertionError("nothing arrived on the channel")


def sync_client(url: str, ca_cert: str | None) -> redis.Redis:
    url, options = redis_tls.client_args(url, ca_cert)
    return redis.Redis.from_url(url, socket_connect_timeout=2, **options)


def async_client(url: str, ca_cert: str | None) -> redis.asyncio.Redis:
    url, options = redis_tls.client_args(url, ca_cert, asyncio=True)
    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=2, **options)


async def _set_and_get(client: redis.asyncio.Redis, key: str) -> bytes | None:
    try:
        await client.set(key, "over tls")
        got: bytes | None = await client.get(key)
        assert client.connection_pool.connection_class is redis_tls.AsyncVerifiedSSLConnection
        return got
    finally:
        await client.aclose()


# --- the clients with the right CA --------------------------------------------------------


def test_a_client_with_memorystores_ca_writes_and_reads_through_tls(tls: Setup) -> None:
    client = sync_client(tls.url, tls.ca.pem)
    try:
        client.set("tls:sync", "over tls")
        assert client.get("tls:sync") == b"over tls"
        assert client.connection_pool.connection_class is redis_tls.VerifiedSSLConnection
    finally:
        client.close()
    assert asyncio.run(_set_and_get(async_client(tls.url, tls.ca.pem), "tls:async")) == b"over tls"
    # both reached the one Valkey behind the front
    assert tls.plain.mget("tls:sync", "tls:async") == [b"over tls", b"over tls"]


def test_the_publisher_publishes_over_tls(tls: Setup) -> None:
    company = "00000000-0000-0000-0000-000000000001"
    pubsub = _subscribed(tls.plain, company_channel("socketio-tls", company))  # its channel
    try:
        SocketIOPublisher(tls.url, channel="socketio-tls", ca_cert=tls.ca.pem).publish(
            "00000000-0000-0000-0000-000000000001", "tile", {"viewers": 7}
        )
        message = _next_message(pubsub)
    finally:
        pubsub.close()
    payload = json.loads(message["data"])  # type: ignore[arg-type]
    assert payload["event"] == "tile" and payload["data"] == [{"viewers": 7}]
    assert payload["room"] == "company:00000000-0000-0000-0000-000000000001"


def test_the_relays_socketio_manager_publishes_over_tls(tls: Setup) -> None:
    # as controlroom.services.realtime hands them to realtime.transport.FeedRedisManager
    url, options = redis_tls.client_args(tls.url, tls.ca.pem, asyncio=True)
    pubsub = _subscribed(tls.plain, "socketio-relay-tls")

    async def emit() -> None:
        manager = socketio.AsyncRedisManager(
            url, channel="socketio-relay-tls", write_only=True, redis_options=options
        )
        await manager.emit("tile", {"n": 1}, room="company:x", namespace="/")
        await manager.redis.aclose()

    try:
        asyncio.run(emit())
        assert json.loads(_next_message(pubsub)["data"])["data"] == [{"n": 1}]  # type: ignore[arg-type]
    finally:
        pubsub.close()


def test_the_rate_limiters_keep_their_buckets_in_redis_over_tls(tls: Setup) -> None:
    rate = settings.Rate(limit=1, period_seconds=3600, burst=1)
    limiter = ratelimit.SyncLimiter("tls-sync", rate, ratelimit.sync_store(tls.url, tls.ca.pem))
    assert limiter.check("k").allowed and not limiter.check("k").allowed

    async def run() -> tuple[bool, bool]:
        store = ratelimit.async_store(tls.url, tls.ca.pem)
        limiter = ratelimit.Limiter("tls-async", rate, store)
        return (await limiter.check("k")).allowed, (await limiter.check("k")).allowed

    assert asyncio.run(run()) == (True, False)
    keys = {k.decode() for k in tls.plain.keys(f"{ratelimit.KEY_PREFIX}*")}
    assert any("tls-sync:k" in k for k in keys) and any("tls-async:k" in k for k in keys)


# --- refused: another CA, whatever else the machine trusts ---------------------------------


def test_a_client_with_another_ca_refuses_the_server_with_a_clear_error(tls: Setup) -> None:
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        sync_client(tls.url, tls.other_ca.pem).ping()
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_set_and_get(async_client(tls.url, tls.other_ca.pem), "tls:refused"))
    assert tls.plain.get("tls:refused") is None


def test_with_a_ca_the_systems_trust_store_is_not_consulted(
    tls: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's store now trusts the server's CA; the client is given another one.
    (tls.folder / "system.pem").write_text(tls.ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.folder / "system.pem"))
    url = tls.url + "?ssl_cert_reqs=none"  # nor can the URL turn verification off
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        sync_client(url, tls.other_ca.pem).ping()
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_set_and_get(async_client(url, tls.other_ca.pem), "tls:refused"))


def test_the_limiter_fails_open_but_writes_nothing_past_a_server_it_cannot_verify(
    tls: Setup,
) -> None:
    rate = settings.Rate(limit=1, period_seconds=3600, burst=1)
    store = ratelimit.sync_store(tls.url, tls.other_ca.pem)
    limiter = ratelimit.SyncLimiter("tls-refused", rate, store)
    assert limiter.check("k").allowed  # a Redis it cannot use never takes the product down
    assert not tls.plain.keys(f"{ratelimit.KEY_PREFIX}*tls-refused*")


def test_without_a_ca_the_system_store_and_the_hostname_are_checked(
    tls: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tls.folder / "system.pem").write_text(tls.ca.pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.folder / "system.pem"))
    public = f"rediss://127.0.0.1:{tls.public.port}/0"
    assert sync_client(public, None).ping()
    assert asyncio.run(_set_and_get(async_client(public, None), "tls:public")) == b"over tls"
    # Memorystore's certificate names its IP only as the CN: hostname matching refuses it
    with pytest.raises(redis.ConnectionError, match="IP address mismatch"):
        sync_client(tls.url, None).ping()


# --- redis:// unchanged, and the setting ------------------------------------------------------


def test_redis_urls_stay_plain(tls: Setup) -> None:
    assert redis_tls.client_args(tls.valkey.url, None) == (tls.valkey.url, {})
    assert redis_tls.client_args(tls.valkey.url, None, asyncio=True) == (tls.valkey.url, {})
    client = sync_client(tls.valkey.url, None)
    assert client.ping() and client.connection_pool.connection_class is redis.Connection
    client.close()


def test_redis_ca_cert_reads_pem_text_or_a_file_and_says_what_is_wrong(tls: Setup) -> None:
    url = settings.Secret(tls.url)
    assert settings.redis_ca_cert(url, {"REDIS_CA_CERT": tls.ca.pem}) == tls.ca.pem.strip()
    (tls.folder / "ca.pem").write_text(tls.ca.pem)
    assert settings.redis_ca_cert(url, {"REDIS_CA_CERT": str(tls.folder / "ca.pem")}) == tls.ca.pem
    # a rotation: the old and the new CA, both trusted
    both = tls.ca.pem + tls.other_ca.pem
    assert settings.redis_ca_cert(url, {"REDIS_CA_CERT": both}) == both.strip()
    assert settings.redis_ca_cert(url, {}) is None
    with pytest.raises(SettingsError, match="neither PEM text nor a readable PEM file"):
        settings.redis_ca_cert(url, {"REDIS_CA_CERT": str(tls.folder / "missing.pem")})
    with pytest.raises(SettingsError, match="no valid PEM certificate"):
        settings.redis_ca_cert(url, {"REDIS_CA_CERT": "-----BEGIN CERTIFICATE-----\nnope\n"})
    with pytest.raises(SettingsError, match="REDIS_URL is not a rediss://"):
        settings.redis_ca_cert(settings.Secret(tls.valkey.url), {"REDIS_CA_CERT": tls.ca.pem})


def test_each_deployable_reads_redis_ca_cert(tls: Setup) -> None:
    env = {
        "REDIS_URL": tls.url,
        "REDIS_CA_CERT": tls.ca.pem,
        "DATABASE_URL": "postgresql://app:secret@127.0.0.1/controlroom",
        "EVENTSUB_SECRET": "s" * 16,
        "GOOGLE_CLOUD_PROJECT": "p",
        "CLOUD_TASKS_LOCATION": "l",
        "CLOUD_TASKS_QUEUE": "q",
        "PERSIST_URL": "http://127.0.0.1:1",
        "BRANDING_BUCKET": "b",
        "JWT_PUBLIC_KEY_PEM": "unused here",
        "PUBLIC_URL": "https://controlroom.example",
    }
    pem = tls.ca.pem.strip()
    assert settings.PersistSettings.from_env(env).redis_ca_cert == pem
    assert settings.WebhookSettings.from_env(env).redis_ca_cert == pem
    assert settings.RealtimeSettings.from_env(env).redis_ca_cert == pem


def test_every_redis_client_is_built_with_redis_tls() -> None:
    """Each line that builds a Redis client (or hands a URL to something that does) takes its
    URL and options from redis_tls, or is given the CA to pass on: a new client must too."""
    root = Path(__file__).resolve().parents[2]
    builders = ("from_url(", "RedisManager(", "SocketIOPublisher(", "_store(", "webhook_limiter(")
    sources = [*(root / "controlroom").rglob("*.py"), *(root / "realtime").rglob("*.py")]
    for path in sources:
        if "dev" in path.relative_to(root).parts or path.name == "redis_tls.py":
            continue  # the local stack's own probes talk to its plain Valkey
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            code = line.lstrip()
            if code.startswith(("def ", "class ", "#")) or not any(b in code for b in builders):
                continue
            call = "\n".join(lines[max(number - 2, 0) : number + 4])
            assert any(w in call for w in ("ca_cert", "tls", "redis_options")), (
                f"{path.relative_to(root)}:{number}: {code}"
            )
