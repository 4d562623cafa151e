from __future__ import annotations

import pytest

from controlroom.dev import cli


def test_missing_configuration_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_OWNER_URL", raising=False)
    assert cli.main(["db", "migrate"]) == 2
    assert "DATABASE_OWNER_URL is not set" in capsys.readouterr().err


def test_commands_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("stack", "db", "seed", "audit"):
        assert command in out


def test_set_fields_keep_numbers_and_json_words_and_refuse_a_missing_value() -> None:
    fields = cli._event_fields(
        ["viewers=5000", "bits=-3", "is_anonymous=false", "is_gift=true", "message=null"]
    )
    assert fields == {
        "viewers": 5000,
        "bits": -3,
        "is_anonymous": False,
        "is_gift": True,
        "message": None,
    }
    text = cli._event_fields(["from_broadcaster_user_name=Big", "tier=1000x", "note=True"])
    assert text == {"from_broadcaster_user_name": "Big", "tier": "1000x", "note": "True"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        cli._event_fields(["novalue"])
