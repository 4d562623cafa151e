"""Token verification: RS256 JWTs (pinned), keys from our own signing keys (in process), a JWKS
URL or a PEM; members' tokens (`verify`) and platform operators' tokens (`verify_platform`)."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt

from controlroom.core.identity import PlatformCaller
from controlroom.core.roles import ROLES, Claims
from controlroom.errors import AuthError
from controlroom.logs import fields

log = logging.getLogger(__name__)

ALGORITHM = "RS256"
JWKS_TTL_SECONDS = 600
JWKS_REFETCH_SECONDS = 60

PLATFORM_AUDIENCE = "controlroom-platform"

Fetch = Callable[[], Mapping[str, Any]]  # returns a JWKS document ({"keys": [...]})
Clock = Callable[[], float]


class Keys(Protocol):
    """Where a token's key comes from, by its `kid` (AuthError when there is none)."""

    def key(self, kid: object) -> Any: ...


class KeySet:
    """The identity provider's signing keys by `kid`, fetched at most once per interval.

    Keys are kept for `ttl` seconds. A `kid` that is not in the set triggers a refetch, but
    only when the last fetch (or failed attempt) is `refetch_interval` seconds old: a flood of
    tokens with made-up `kid`s costs one fetch per interval, not one per token, and tokens
    with a known `kid` are answered from memory meanwhile. When a refresh fails, the keys
    already held keep serving (an identity provider outage does not sign everyone out).
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl: float = JWKS_TTL_SECONDS,
        refetch_interval: float = JWKS_REFETCH_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()  # one fetch at a time; verify runs in worker threads
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not

    def key(self, kid: object) -> Any:
        if not isinstance(kid, str) or not kid:
            raise AuthError("unknown signing key")
        keys, fetched_at = self._keys, self._fetched_at
        if fetched_at is not None and self._clock() - fetched_at < self._ttl and kid in keys:
            return keys[kid]
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
            if (stale or kid not in self._keys) and self._may_fetch(now):
                self._refresh(now)
            if kid in self._keys:
                return self._keys[kid]
            if self._fetched_at is None:
                raise AuthError("identity provider keys unavailable")
            raise AuthError("unknown signing key")

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._interval

    def _refresh(self, now: float) -> None:
        self._attempted_at = now
        try:
            document = self._fetch()
            found = jwt.PyJWKSet.from_dict(dict(document)).keys
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            # keep what we have; the next try waits for the interval
            log.warning(
                "signing keys fetch failed",
                extra=fields(error=type(exc).__name__, keys_held=len(self._keys)),
            )
            return
        self._keys = {k.key_id: k.key for k in found if k.key_id and k.public_key_use != "enc"}
        self._fetched_at = now


def jwks_fetch(url: str, *, timeout: int = 5) -> Fetch:
    """The JWKS document from `url` (PyJWT's client does the HTTP; caching is KeySet's)."""
    client = jwt.PyJWKClient(url, cache_jwk_set=False, cache_keys=False, timeout=timeout)
    return client.fetch_data


class TokenVerifier:
    """Verifies tokens against our own signing keys (a `signing.Signer`: in process, no
    network), a JWKS (a `KeySet`: keys cached with a TTL, an unknown kid refetched at most once
    per interval) or a PEM.

    The algorithm is pinned to RS256, so `none` and HS256-with-the-public-key are refused
    by construction; `exp`, `nbf`, `iss` and `aud` are required and checked.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        public_key_pem: str | None = None,
        leeway_seconds: int = 30,
        jwks_ttl_seconds: float = JWKS_TTL_SECONDS,
        jwks_refetch_seconds: float = JWKS_REFETCH_SECONDS,
        keys: Keys | None = None,
        platform_audience: str = PLATFORM_AUDIENCE,
    ) -> None:
        if not (jwks_url or public_key_pem or keys):
            raise ValueError("a JWKS URL or a public key is required")
        self.issuer = issuer
        self.audience = audience
        self.platform_audience = platform_audience
        self.leeway = leeway_seconds
        self._pem = public_key_pem
        if keys is None and jwks_url:
            keys = KeySet(
                jwks_fetch(jwks_url),
                ttl=jwks_ttl_seconds,
                refetch_interval=jwks_refetch_seconds,
            )
        self._jwks: Keys | None = keys

    def _key(self, header: Mapping[str, Any]) -> Any:
        if self._jwks is None:
            return self._pem
        return self._jwks.key(header.get("kid"))

    def _decode(self, token: object, audience: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise AuthError("missing token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("algorithm not allowed")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key(header),
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not yet valid") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise AuthError("token not for this service") from None
        except jwt.InvalidTokenError:
            raise AuthError("invalid token") from None
        return payload

    def verify(self, token: object) -> Claims:
        """A member's token: who, in which company, with which role (AuthError otherwise)."""
        payload = self._decode(token, self.audience)
        try:
            company = uuid.UUID(str(payload.get("company_id")))
        except ValueError:
            raise AuthError("token has no company") from None
        role = payload.get("role")
        if role not in ROLES:
            raise AuthError("token has no valid role")
        return Claims(
            subject=str(payload["sub"]),
            company_id=company,
            role=str(role),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )

    def verify_platform(self, token: object) -> PlatformCaller:
        """A platform operator's token (its own audience: a member's token is refused here,
        and a platform token is refused by `verify`)."""
        payload = self._decode(token, self.platform_audience)
        email = payload.get("email")
        if not isinstance(email, str) or not email:
            raise AuthError("token has no email")
        return PlatformCaller(subject=str(payload["sub"]), email=email)
