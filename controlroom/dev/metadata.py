"""A local stand-in for the GCE metadata server's identity endpoint.

Like the real one, it answers only with `Metadata-Flavor: Google` and an `audience`, and
returns a signed OIDC ID token (RS256, from a key made at start) whose `aud` is that
audience, `sub` and `azp` the service account's unique id, `iss` Google's. AWS never sees
these tokens in tests (moto's STS accepts any); the requests are recorded for assertions.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
ISSUER = "https://accounts.google.com"


@dataclass
class IdentityRequest:
    audience: str | None
    format: str | None
    flavor: str | None


@dataclass
class MetadataStandIn:
    """State of the stand-in: who it is, its key, what it was asked, whether it refuses."""

    unique_id: str = "104729104729104729104"
    email: str = "realtime@controlroom-local.iam.gserviceaccount.com"
    lifetime_seconds: int = 3600
    refuse: bool = False  # answer 503 to everything, like a metadata server that is down
    requests: list[IdentityRequest] = field(default_factory=list)
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, audience: str, full: bool) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": self.unique_id,
            "sub": self.unique_id,
            "iat": now,
            "exp": now + self.lifetime_seconds,
        }
        if full:
            claims |= {"email": self.email, "email_verified": True}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "dev"})

    def answer(
        self, path: str, headers: dict[str, str]
    ) -> tuple[int, str]:  # (status, body), as the real server words it
        parts = urllib.parse.urlsplit(path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        flavor = headers.get("metadata-flavor")
        with self._lock:
            self.requests.append(
                IdentityRequest(query.get("audience"), query.get("format"), flavor)
            )
        if self.refuse:
            return 503, "metadata server unavailable\n"
        if flavor != "Google":
            return 403, "Missing Metadata-Flavor:Google header.\n"
        if parts.path != IDENTITY_PATH:
            return 404, "not found\n"
        if not query.get("audience"):
            return 400, "non-empty audience parameter required\n"
        return 200, self.token(query["audience"], query.get("format") == "full")


def _handler(state: MetadataStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = state.answer(self.path, headers)
            data = body.encode()
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "text/html" if status == 200 else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class MetadataServer:
    """The stand-in served on 127.0.0.1 (port 0: any free one); `host` is GCE_METADATA_HOST."""

    def __init__(self, state: MetadataStandIn | None = None, port: int = 0) -> None:
        self.state = state or MetadataStandIn()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self.state))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> MetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
