"""Redis over TLS: a `rediss://` URL verifies the server's certificate; `redis://` is unchanged.

Every Redis client the product builds (the publisher, the relay's Socket.IO manager, the
consent states, the readiness ping and the rate limiters' stores) takes its URL and connection
options from `client_args`, so they all verify the same way:

- With a CA (REDIS_CA_CERT, PEM): the server's chain must lead to that CA and to nothing
  else: the system's trust store is not consulted. Memorystore gives each instance a CA of its
  own and issues the instance's server certificate with its IP address as the common name and
  no subject alternative name, which TLS hostname matching cannot accept; trusting only that
  per-instance CA is what identifies the server, so the name is not matched.
- Without a CA: the system's trust store and hostname matching (a Redis with a public
  certificate).

Either way the certificate is required, whatever the URL's query says (`ssl_cert_reqs=none`
in a URL has no effect), and TLS is 1.2 or newer.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any

import redis
import redis.asyncio.connection


def tls_context(ca_cert: str | None) -> ssl.SSLContext:
    """The client context for a `rediss://` connection (see the module's docstring)."""
    if ca_cert is None:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no default CAs loaded
        context.load_verify_locations(cadata=ca_cert)
        context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# (types-redis describes redis-py 4; the two methods below are redis-py 6's, pinned in the lock
# and exercised by tests/integration/test_redis_tls.py)
class VerifiedSSLConnection(redis.SSLConnection):
    """redis-py's TLS connection with our context (redis-py adds the system CAs to a CA)."""

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        ca_cert: str | None = self.ca_data  # type: ignore[attr-defined]
        return tls_context(ca_cert).wrap_socket(sock, server_hostname=self.host)


class AsyncVerifiedSSLConnection(redis.asyncio.connection.SSLConnection):
    """The same for redis.asyncio clients."""

    def _connection_arguments(self) -> Any:
        arguments = dict(super()._connection_arguments())  # type: ignore[misc]
        arguments["ssl"] = tls_context(self.ca_data)
        return arguments


def client_args(
    url: str, ca_cert: str | None, *, asyncio: bool = False
) -> tuple[str, dict[str, Any]]:
    """The URL and keyword arguments to give `Redis.from_url` (or a pool's `from_url`) for `url`;
    `asyncio` for redis.asyncio clients. A `redis://` URL comes back as it is, with no options.

    For `rediss://`, the options name our connection class. redis.asyncio's pool lets the URL's
    scheme choose the class (rediss: its own TLS connection, which adds the system's CAs to
    ours), so an asyncio client is handed the URL as `redis://` with our TLS class: it still
    speaks only TLS, verified as above.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "rediss":
        return url, {}
    if asyncio:
        url = urllib.parse.urlunsplit(parts._replace(scheme="redis"))
    return url, {
        "connection_class": AsyncVerifiedSSLConnection if asyncio else VerifiedSSLConnection,
        "ssl_ca_data": ca_cert,
    }
