"""The development signing key: the local stack passes it to the service as TOKEN_SIGNING_KEYS,
so tokens minted here (`controlroom token`, the tests) are ones the service itself could sign."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from controlroom.adapters.signing import thumbprint

ISSUER = "https://controlroom.local/dev-idp"
AUDIENCE = "controlroom"


@dataclass(frozen=True)
class DevKeys:
    private_pem: bytes
    kid: str

    @classmethod
    def create(cls, directory: Path) -> DevKeys:
        """Load the key in `directory`, or make one; (re)write its public JWKS in
        `directory/public`, the only folder the identity stand-in serves."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / "signing-key.pem"
        if not key_file.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_file.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            key_file.chmod(0o600)
        keys = cls.load(key_file)
        public = directory / "public"
        public.mkdir(exist_ok=True)
        (public / "jwks.json").write_text(json.dumps({"keys": [keys.public_jwk()]}))
        return keys

    @classmethod
    def load(cls, key_file: Path) -> DevKeys:
        pem = key_file.read_bytes()
        private = serialization.load_pem_private_key(pem, None)
        assert isinstance(private, rsa.RSAPrivateKey)
        return cls(pem, thumbprint(private.public_key()))  # kid: RFC 7638, as the service's

    @cached_property
    def private_key(self) -> rsa.RSAPrivateKey:
        """The key, parsed once: loading a PEM checks the RSA key, about 35 ms each time."""
        private = serialization.load_pem_private_key(self.private_pem, None)
        assert isinstance(private, rsa.RSAPrivateKey)
        return private

    def public_pem(self) -> str:
        public = self.private_key.public_key()
        return public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def public_jwk(self) -> dict[str, str]:
        public = self.private_key.public_key()
        jwk: dict[str, str] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(
        self,
        subject: str,
        company_id: uuid.UUID | str,
        role: str,
        ttl: timedelta = timedelta(hours=8),
        *,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": subject,
            "company_id": str(company_id),
            "role": role,
            "iss": issuer,
            "aud": audience,
            "iat": now,
            "nbf": now - timedelta(seconds=5),
            "exp": now + ttl,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})
