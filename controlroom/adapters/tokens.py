"""Token verification for dashboard users: RS256 JWTs (pinned), keys from a JWKS URL or a PEM."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import jwt

from controlroom.core.roles import ROLES, Claims
from controlroom.errors import AuthError

ALGORITHM = "RS256"


class TokenVerifier:
    """Verifies tokens against a JWKS URL (keys cached, refetched for an unknown kid) or a PEM.

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
    ) -> None:
        if not (jwks_url or public_key_pem):
            raise ValueError("a JWKS URL or a public key is required")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self._pem = public_key_pem
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if jwks_url
            else None
        )

    def _key(self, token: str) -> Any:
        if self._jwks is None:
            return self._pem
        try:
            return self._jwks.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError:
            raise AuthError("identity provider keys unavailable") from None
        except jwt.PyJWKClientError:
            raise AuthError("unknown signing key") from None
        except jwt.DecodeError:
            raise AuthError("malformed token") from None

    def verify(self, token: object) -> Claims:
        if not isinstance(token, str) or not token or len(token) > 8192:
            raise AuthError("missing token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise AuthError("algorithm not allowed")
        try:
            payload = jwt.decode(
                token,
                self._key(token),
                algorithms=[ALGORITHM],
                audience=self.audience,
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
