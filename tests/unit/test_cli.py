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
