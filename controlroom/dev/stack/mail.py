"""The mail catcher's stand-in: SMTP on one port, the page listing what arrived on another."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from controlroom.dev.stack.process import StandIn, tcp_answers


class MailCatcher(StandIn):
    """controlroom.dev.mailcatcher: `port` is its page, `smtp_port` takes the mail."""

    name = "mailcatcher"

    def __init__(self, log_dir: Path, port: int, smtp_port: int) -> None:
        super().__init__(log_dir, port)
        self.smtp_port = smtp_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        """What the deployables read to send mail here (plain SMTP, no login)."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp_port),
            "SMTP_STARTTLS": "false",
            "SMTP_FROM": "Creator Control Room <no-reply@controlroom.local>",
            "MAIL_CATCHER_URL": self.url,
        }

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            sys.executable,
            "-m",
            "controlroom.dev.mailcatcher",
            "--smtp-port",
            str(self.smtp_port),
            "--http-port",
            str(self.port),
        ]
        return argv, None

    def ready(self) -> bool:
        return tcp_answers("127.0.0.1", self.port) and tcp_answers("127.0.0.1", self.smtp_port)

    def messages(self) -> list[dict[str, Any]]:
        """What arrived so far (for tests)."""
        with urllib.request.urlopen(f"{self.url}messages.json", timeout=5) as answer:  # noqa: S310 - our own loopback URL
            found: list[dict[str, Any]] = json.loads(answer.read())
        return found
