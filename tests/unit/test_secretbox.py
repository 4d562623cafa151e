"""Envelope encryption of channel URLs: round trip, the row binding, rotation, tampering."""

from __future__ import annotations

import base64
import dataclasses
import os
import uuid

import pytest

from controlroom.adapters.secretbox import Keyring, Sealed
from controlroom.errors import SealError, SettingsError

COMPANY, CHANNEL = uuid.uuid4(), uuid.uuid4()
URL = "https://discord.com/api/webhooks/123456789012345678/token-abcd"


def _ring(*kids: str) -> Keyring:
    return Keyring.parse(",".join(Keyring.generate(k) for k in kids))


def test_round_trip_with_and_without_a_secret() -> None:
    ring = _ring("k1")
    sealed = ring.seal(COMPANY, CHANNEL, URL, "whsec_c2VjcmV0")
    assert URL.encode() not in sealed.sealed_url
    assert sealed.key_id == "k1"
    opened = ring.open(COMPANY, CHANNEL, sealed)
    assert (opened.url, opened.secret) == (URL, "whsec_c2VjcmV0")
    assert URL not in repr(opened)
    plain = ring.seal(str(COMPANY), str(CHANNEL), URL)
    assert plain.sealed_secret is None
    assert ring.open(COMPANY, CHANNEL, plain).secret is None


def test_each_seal_uses_a_fresh_data_key() -> None:
    ring = _ring("k1")
    a, b = ring.seal(COMPANY, CHANNEL, URL), ring.seal(COMPANY, CHANNEL, URL)
    assert a.wrapped_key != b.wrapped_key
    assert a.sealed_url != b.sealed_url


@pytest.mark.parametrize(("company", "channel"), [(uuid.uuid4(), CHANNEL), (COMPANY, uuid.uuid4())])
def test_another_row_cannot_open_it(company: uuid.UUID, channel: uuid.UUID) -> None:
    ring = _ring("k1")
    sealed = ring.seal(COMPANY, CHANNEL, URL)
    with pytest.raises(SealError):
        ring.open(company, channel, sealed)


def test_url_and_secret_cannot_be_swapped() -> None:
    ring = _ring("k1")
    sealed = ring.seal(COMPANY, CHANNEL, URL, "whsec_c2VjcmV0")
    swapped = dataclasses.replace(
        sealed, sealed_url=sealed.sealed_secret or b"", sealed_secret=sealed.sealed_url
    )
    with pytest.raises(SealError):
        ring.open(COMPANY, CHANNEL, swapped)


def test_rotation_opens_old_rows_and_seals_with_the_new_key() -> None:
    old = Keyring.generate("k0")
    before = Keyring.parse(old)
    sealed = before.seal(COMPANY, CHANNEL, URL)
    after = Keyring.parse(f"{Keyring.generate('k1')},{old}")
    assert after.open(COMPANY, CHANNEL, sealed).url == URL
    assert after.needs_rotation(sealed)
    resealed = after.seal(COMPANY, CHANNEL, URL)
    assert resealed.key_id == "k1" and not after.needs_rotation(resealed)
    with pytest.raises(SealError):  # the old ring does not know the new key
        before.open(COMPANY, CHANNEL, resealed)


def test_a_key_id_relabelled_does_not_open() -> None:
    ring = Keyring.parse(f"{Keyring.generate('k1')},{Keyring.generate('k0')}")
    sealed = ring.seal(COMPANY, CHANNEL, URL)
    with pytest.raises(SealError):
        ring.open(COMPANY, CHANNEL, dataclasses.replace(sealed, key_id="k0"))


@pytest.mark.parametrize("field", ["sealed_url", "wrapped_key"])
def test_tampering_fails(field: str) -> None:
    ring = _ring("k1")
    sealed = ring.seal(COMPANY, CHANNEL, URL)
    raw = bytearray(getattr(sealed, field))
    raw[-1] ^= 1
    with pytest.raises(SealError):
        ring.open(COMPANY, CHANNEL, dataclasses.replace(sealed, **{field: bytes(raw)}))
    with pytest.raises(SealError):
        ring.open(COMPANY, CHANNEL, dataclasses.replace(sealed, **{field: b"short"}))


def test_unknown_key_id_fails() -> None:
    sealed = _ring("k1").seal(COMPANY, CHANNEL, URL)
    with pytest.raises(SealError, match="k1"):
        _ring("k2").open(COMPANY, CHANNEL, sealed)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "k1",
        "k1:not-base64!",
        f"k1:{base64.b64encode(os.urandom(16)).decode()}",
        f"k1:{base64.b64encode(os.urandom(32)).decode()},k1:{base64.b64encode(os.urandom(32)).decode()}",
    ],
)
def test_malformed_keyrings_are_refused_without_echoing_keys(text: str) -> None:
    with pytest.raises(SettingsError) as err:
        Keyring.parse(text)
    for part in text.split(","):
        secret = part.partition(":")[2]
        if secret:
            assert secret not in str(err.value)


def test_repr_names_ids_only() -> None:
    text = Keyring.generate("k1")
    assert text.split(":")[1] not in repr(Keyring.parse(text))
    assert isinstance(Keyring.parse(text).seal(COMPANY, CHANNEL, URL), Sealed)
