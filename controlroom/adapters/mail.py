"""Mail through an SMTP relay: one message per call, bounded by a timeout, secrets never logged."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from controlroom.errors import UnavailableError
from controlroom.logs import fields
from controlroom.settings import SmtpSettings

log = logging.getLogger(__name__)


class SmtpMailer:
    """Sends plain-text mail through `SmtpSettings`' relay (STARTTLS and login when set)."""

    def __init__(self, cfg: SmtpSettings) -> None:
        self.cfg = cfg

    def send(self, to: str, subject: str, text: str) -> None:
        """Deliver one message to the relay, or UnavailableError (the reason is logged, the
        password never is)."""
        cfg = self.cfg
        message = EmailMessage()
        message["From"] = cfg.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="controlroom")
        message.set_content(text)
        try:
            with smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds) as smtp:
                if cfg.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if cfg.username and cfg.password is not None:
                    smtp.login(cfg.username, cfg.password.reveal())
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning(
                "mail not sent",
                extra=fields(smtp_host=cfg.host, smtp_port=cfg.port, error=type(exc).__name__),
            )
            raise UnavailableError("the mail server did not take the message") from None
        log.info("mail sent", extra=fields(smtp_host=cfg.host, subject=subject))

    async def send_async(self, to: str, subject: str, text: str) -> None:
        """`send` in a worker thread (smtplib blocks)."""
        await asyncio.to_thread(self.send, to, subject, text)
