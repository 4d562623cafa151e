from __future__ import annotations

import pytest

from controlroom import errors, settings


def test_missing_variable_is_named() -> None:
    with pytest.raises(errors.SettingsError, match=r"^DATABASE_URL is not set$"):
        settings.DatabaseSettings.from_env({})


def test_blank_counts_as_missing() -> None:
    with pytest.raises(errors.SettingsError, match="DATABASE_URL"):
        settings.DatabaseSettings.from_env({"DATABASE_URL": "   "})


def test_url_settings_hide_the_secret() -> None:
    cfg = settings.DatabaseSettings.from_env({"DATABASE_URL": "postgresql://u:hunter2@db/x"})
    assert cfg.url is not None and cfg.url.reveal() == "postgresql://u:hunter2@db/x"
    assert "hunter2" not in repr(cfg)
    assert "hunter2" not in str(cfg.url)
    assert cfg.connect_timeout == 5


def test_cloud_sql_settings_need_user_password_and_name() -> None:
    env = {"CLOUD_SQL_INSTANCE": "proj:region:inst", "DATABASE_USER": "app"}
    with pytest.raises(errors.SettingsError, match="DATABASE_PASSWORD"):
        settings.DatabaseSettings.from_env(env)
    env |= {"DATABASE_PASSWORD": "s3cret-pw", "DATABASE_NAME": "controlroom"}
    cfg = settings.DatabaseSettings.from_env(env)
    assert cfg.url is None
    assert cfg.cloud_sql_instance == "proj:region:inst"
    assert "s3cret-pw" not in repr(cfg)


def test_integers_are_checked() -> None:
    env = {"DATABASE_URL": "postgresql://x", "DATABASE_CONNECT_TIMEOUT": "soon"}
    with pytest.raises(errors.SettingsError, match="DATABASE_CONNECT_TIMEOUT must be an integer"):
        settings.DatabaseSettings.from_env(env)
    assert settings.read_int("N", 3, {"N": "7"}) == 7


def test_settings_are_read_lazily_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings.database.cache_clear()
    monkeypatch.setenv("DATABASE_URL", "postgresql://first")
    first = settings.database()
    monkeypatch.setenv("DATABASE_URL", "postgresql://second")
    assert settings.database() is first
    with pytest.raises(AttributeError):
        first.connect_timeout = 9  # type: ignore[misc]
    settings.database.cache_clear()
