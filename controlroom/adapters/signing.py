"""Our own access tokens: RS256 keys from TOKEN_SIGNING_KEYS (kid = RFC 7638 thumbprint), the
tokens they sign, and the JWKS that publishes their public halves."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlroom.errors import AuthError, SettingsError

ALGORITHM = "RS256"
AUDIENCE = "controlroom"  # a member acting within one company
PLATFORM_AUDIENCE = "controlroom-platform"  # a platform operator acting on companies
MIN_KEY_BITS = 2048

_PEM = re.compile(
    r"-----BEGIN (?:RSA )?PRIVATE KEY-----.+?-----END (?:RSA )?PRIVATE KEY-----", re.DOTALL
)


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(public: rsa.RSAPublicKey) -> str:
    """RFC 7638: SHA-256 over the required members (e, kty, n) in lexical order, no spaces."""
    numbers = public.public_numbers()
    canonical = json.dumps(
        {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One RSA private key and its thumbprint `kid` (its repr shows the kid only)."""

    kid: str
    private: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    @classmethod
    def from_pem(cls, pem: str | bytes) -> SigningKey:
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, None)
        except (ValueError, TypeError):
            raise SettingsError("TOKEN_SIGNING_KEYS holds a key that cannot be read") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise SettingsError("TOKEN_SIGNING_KEYS must hold RSA private keys")
        if key.key_size < MIN_KEY_BITS:
            raise SettingsError(f"TOKEN_SIGNING_KEYS: RSA keys need {MIN_KEY_BITS} bits or more")
        return cls(thumbprint(key.public_key()), key)

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def public_jwk(self) -> dict[str, str]:
        numbers = self.public.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64(numbers.n),
            "e": _b64(numbers.e),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }


def load_keys(text: str) -> tuple[SigningKey, ...]:
    """Every PEM private key in `text`, current (signing) first, the ones still verified after."""
    found = _PEM.findall(text.replace("\\n", "\n"))
    if not found:
        raise SettingsError("TOKEN_SIGNING_KEYS holds no PEM private key")
    keys = tuple(SigningKey.from_pem(pem) for pem in found)
    if len({k.kid for k in keys}) != len(keys):
        raise SettingsError("TOKEN_SIGNING_KEYS lists the same key twice")
    return keys


def generate_pem() -> str:
    """A new 2048-bit RSA private key in PKCS#8 PEM (what a rotation adds)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class Signer:
    """Signs our access tokens with the first key; verifies with any key still listed."""

    def __init__(
        self,
        keys: Sequence[SigningKey],
        issuer: str,
        *,
        audience: str = AUDIENCE,
        access_ttl_seconds: int = 900,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self.keys = tuple(keys)
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl_seconds
        self._clock = clock
        self._by_kid = {k.kid: k for k in self.keys}

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys (every listed one: two during a rotation)."""
        return {"keys": [k.public_jwk() for k in self.keys]}

    def key(self, kid: object) -> rsa.RSAPublicKey:
        """The public key for a token's `kid` (the verifier's key source: no network)."""
        found = self._by_kid.get(kid) if isinstance(kid, str) else None
        if found is None:
            raise AuthError("unknown signing key")
        return found.public

    def _sign(self, claims: dict[str, Any]) -> str:
        now = int(self._clock())
        body = {
            **claims,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(body, self.current.private, ALGORITHM, headers={"kid": self.current.kid})

    def access_token(
        self, subject: str, company_id: uuid.UUID, role: str, session_id: uuid.UUID
    ) -> str:
        """A member's token for one company: what the REST API and the relay accept."""
        return self._sign(
            {
                "sub": subject,
                "aud": self.audience,
                "company_id": str(company_id),
                "role": role,
                "sid": str(session_id),
            }
        )

    def platform_token(self, subject: str, email: str, session_id: uuid.UUID) -> str:
        """A platform operator's token: no company, another audience (never a member's)."""
        return self._sign(
            {"sub": subject, "aud": PLATFORM_AUDIENCE, "email": email, "sid": str(session_id)}
        )
