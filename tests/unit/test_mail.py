"""The SMTP mailer with a fake smtplib: TLS and login as configured, bounded by a timeout,
failures become UnavailableError, and the password never reaches a log line."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any

import pytest

from controlroom import settings
from controlroom.adapters import mail
from controlroom.errors import UnavailableError


class FakeSMTP:
    made: list[FakeSMTP] = []  # noqa: RUF012 - a record shared by the test
    fail_on: str | None = None

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address, self.timeout = (host, port), timeout
        self.calls: list[str] = []
        self.sent: list[EmailMessage] = []
        FakeSMTP.made.append(self)

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.calls.append("quit")

    def _maybe_fail(self, step: str) -> None:
        self.calls.append(step)
        if FakeSMTP.fail_on == step:
            raise smtplib.SMTPAuthenticationError(535, b"bad credentials")

    def starttls(self, context: Any) -> None:
        self._maybe_fail("starttls")

    def login(self, user: str, password: str) -> None:
        self._maybe_fail("login")

    def send_message(self, message: EmailMessage) -> None:
        self._maybe_fail("send")
        self.sent.append(message)


@pytest.fixture(autouse=True)
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeSMTP.made, FakeSMTP.fail_on = [], None
    monkeypatch.setattr(mail.smtplib, "SMTP", FakeSMTP)


def cfg(**env: str) -> settings.SmtpSettings:
    found = settings.SmtpSettings.from_env({"SMTP_HOST": "smtp.example", **env})
    assert found is not None
    return found


def test_tls_login_and_the_message() -> None:
    mailer = mail.SmtpMailer(
        cfg(SMTP_USERNAME="bot", SMTP_PASSWORD="hunter2", SMTP_FROM="a@b.example")
    )
    mailer.send("to@example.com", "Join", "the link: http://x/#invite=1.2")
    (smtp,) = FakeSMTP.made
    assert smtp.address == ("smtp.example", 587) and smtp.timeout == 10
    assert smtp.calls == ["starttls", "login", "send", "quit"]
    (message,) = smtp.sent
    assert (message["To"], message["From"], message["Subject"]) == (
        "to@example.com",
        "a@b.example",
        "Join",
    )
    assert "http://x/#invite=1.2" in message.get_content()


def test_plain_smtp_without_login_for_the_local_catcher() -> None:
    mail.SmtpMailer(cfg(SMTP_PORT="1025", SMTP_STARTTLS="false")).send("t@e.example", "s", "b")
    assert FakeSMTP.made[0].calls == ["send", "quit"]


def test_a_refusal_is_unavailable_and_the_password_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    FakeSMTP.fail_on = "login"
    mailer = mail.SmtpMailer(cfg(SMTP_USERNAME="bot", SMTP_PASSWORD="hunter2"))
    with caplog.at_level(logging.DEBUG), pytest.raises(UnavailableError):
        mailer.send("to@example.com", "Join", "body")
    assert "hunter2" not in caplog.text and "hunter2" not in repr(mailer.cfg)
    assert FakeSMTP.made[0].sent == []


def test_no_host_means_no_mailer_and_bad_values_name_their_variable() -> None:
    assert settings.SmtpSettings.from_env({}) is None
    with pytest.raises(settings.SettingsError, match="SMTP_STARTTLS"):
        settings.SmtpSettings.from_env({"SMTP_HOST": "h", "SMTP_STARTTLS": "maybe"})
    with pytest.raises(settings.SettingsError, match="COMPANY_DELETE_GRACE_DAYS"):
        settings.TenancySettings.from_env({"COMPANY_DELETE_GRACE_DAYS": "-1"})


def test_the_catcher_page_links_urls_and_escapes_everything_else() -> None:
    from controlroom.dev import mailcatcher

    html = mailcatcher.page(
        [
            {
                "subject": "<script>alert(1)</script>",
                "to": ["a@b.example"],
                "mail_from": "x@y.example",
                "received_at": "now",
                "text": 'Open http://127.0.0.1:8080/#invite=1.abc now <img src=x onerror="y">',
                "links": [],
            }
        ]
    )
    assert '<a href="http://127.0.0.1:8080/#invite=1.abc">' in html
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
