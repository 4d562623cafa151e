"""The notification settings: the keyring is a secret, loopback channels are opt-in, and the
notify function reads its queue only when NOTIFY_URL is set."""

from __future__ import annotations

import pytest

from controlroom import settings
from controlroom.adapters.secretbox import Keyring
from controlroom.errors import SettingsError

BASE = {"DATABASE_URL": "postgresql://app:pw@127.0.0.1/controlroom"}


def test_the_keyring_is_required_and_never_shown() -> None:
    with pytest.raises(SettingsError, match="NOTIFICATION_KEYS"):
        settings.ChannelSettings.from_env({})
    keys = Keyring.generate("k1")
    cfg = settings.ChannelSettings.from_env({"NOTIFICATION_KEYS": keys})
    assert cfg.allow_loopback is False
    assert keys.split(":")[1] not in repr(cfg)


def test_notify_function_settings() -> None:
    env = {**BASE, "NOTIFICATION_KEYS": Keyring.generate(), "PUBLIC_URL": "https://c.example/"}
    cfg = settings.NotifyFunctionSettings.from_env(env)
    assert cfg.public_url == "https://c.example"
    assert cfg.queue is None
    env |= {"NOTIFY_URL": "https://notify.example/", "NOTIFY_ALLOW_LOOPBACK": "1"}
    cfg = settings.NotifyFunctionSettings.from_env(env)
    assert cfg.queue is not None and cfg.queue.queue == "notify"
    assert cfg.channels.allow_loopback is True


def test_persist_and_realtime_dispatch_only_with_notify_url() -> None:
    env = {**BASE, "REDIS_URL": "redis://127.0.0.1:6379"}
    assert settings.PersistSettings.from_env(env).notify is None
    with_url = settings.PersistSettings.from_env({**env, "NOTIFY_URL": "https://n.example/"})
    assert with_url.notify is not None and with_url.notify.url == "https://n.example/"
