"""Envelope encryption for notification channels: a data key per channel seals its webhook URL
(and signing secret), and a key-encryption key from NOTIFICATION_KEYS seals the data key.

NOTIFICATION_KEYS is "kid1:<base64 of 32 bytes>,kid0:<...>": the first key seals, every key
listed opens, so a rotation adds a new first key and keeps the old ones until every channel has
been sealed again. Each sealed value is bound (AES-GCM's associated data) to its company,
channel and purpose: a value copied to another row, or a URL swapped with a secret, fails to open.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controlroom.errors import SealError, SettingsError

_NONCE = 12
_KEY_BYTES = 32
_VERSION = "controlroom/notification-channel/v1"


@dataclass(frozen=True)
class Sealed:
    """What a channel row stores (sealed_url, sealed_secret, wrapped_key, key_id)."""

    sealed_url: bytes
    sealed_secret: bytes | None
    wrapped_key: bytes
    key_id: str


@dataclass(frozen=True)
class Opened:
    url: str
    secret: str | None

    def __repr__(self) -> str:
        return "Opened(url='********', secret='********')"

    __str__ = __repr__


def _aad(purpose: str, company_id: uuid.UUID | str, channel_id: uuid.UUID | str) -> bytes:
    return (
        f"{_VERSION}|{purpose}|{uuid.UUID(str(company_id))}|{uuid.UUID(str(channel_id))}".encode()
    )


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) <= _NONCE:
        raise SealError("sealed value is truncated")
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except InvalidTag:
        raise SealError("sealed value does not open (wrong key, row or tampered)") from None


class Keyring:
    """The key-encryption keys by id; the first one seals."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise SettingsError("NOTIFICATION_KEYS holds no key")
        for kid, key in keys:
            if len(key) != _KEY_BYTES:
                raise SettingsError(f"NOTIFICATION_KEYS: key {kid!r} is not 32 bytes")
        self._keys = dict(keys)
        if len(self._keys) != len(keys):
            raise SettingsError("NOTIFICATION_KEYS names a key id twice")
        self.current_id = keys[0][0]

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self._keys)!r})"

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """From "kid1:<base64>,kid0:<base64>" (the key-encryption keys never reach a message)."""
        keys: list[tuple[str, bytes]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            kid, sep, b64 = part.partition(":")
            if not sep or not kid.strip() or not all(c.isalnum() or c in "-_." for c in kid):
                raise SettingsError(
                    "NOTIFICATION_KEYS must look like 'kid1:<base64>,kid0:<base64>'"
                )
            try:
                key = base64.b64decode(b64.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError(f"NOTIFICATION_KEYS: key {kid!r} is not base64") from None
            keys.append((kid.strip(), key))
        return cls(keys)

    @staticmethod
    def generate(kid: str = "dev1") -> str:
        """A fresh one-key keyring, as NOTIFICATION_KEYS text (the local stack keeps one)."""
        return f"{kid}:{base64.b64encode(os.urandom(_KEY_BYTES)).decode()}"

    def seal(
        self,
        company_id: uuid.UUID | str,
        channel_id: uuid.UUID | str,
        url: str,
        secret: str | None = None,
    ) -> Sealed:
        """A new data key for this channel seals the URL and secret; the current KEK wraps it."""
        data_key = AESGCM.generate_key(bit_length=256)
        kek = self._keys[self.current_id]
        return Sealed(
            sealed_url=_seal(data_key, url.encode(), _aad("url", company_id, channel_id)),
            sealed_secret=None
            if secret is None
            else _seal(data_key, secret.encode(), _aad("secret", company_id, channel_id)),
            wrapped_key=_seal(
                kek, data_key, _aad(f"key:{self.current_id}", company_id, channel_id)
            ),
            key_id=self.current_id,
        )

    def open(
        self, company_id: uuid.UUID | str, channel_id: uuid.UUID | str, sealed: Sealed
    ) -> Opened:
        kek = self._keys.get(sealed.key_id)
        if kek is None:
            raise SealError(f"key {sealed.key_id!r} is not in NOTIFICATION_KEYS")
        data_key = _open(
            kek, sealed.wrapped_key, _aad(f"key:{sealed.key_id}", company_id, channel_id)
        )
        url = _open(data_key, sealed.sealed_url, _aad("url", company_id, channel_id)).decode()
        secret = None
        if sealed.sealed_secret is not None:
            raw = _open(data_key, sealed.sealed_secret, _aad("secret", company_id, channel_id))
            secret = raw.decode()
        return Opened(url=url, secret=secret)

    def needs_rotation(self, sealed: Sealed) -> bool:
        """Sealed under an older key: seal again (open, then seal) to retire that key."""
        return sealed.key_id != self.current_id
