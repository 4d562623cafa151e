"""The notification sink's stand-in (Discord, Slack and signed webhooks; see
controlroom/dev/notifysink.py): one port for the posts, the control API and the page."""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

from controlroom.dev.stack.process import StandIn


class NotificationSink(StandIn):
    name = "notification-sink"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def channel_url(self, kind: str, name: str) -> str:
        """Where a channel of `kind` named `name` posts (an http loopback URL: the stack sets
        NOTIFY_ALLOW_LOOPBACK so channels may point here)."""
        return f"{self.url}{kind}/{name}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [sys.executable, "-m", "controlroom.dev.notifysink", "--port", str(self.port)]
        return argv, None

    def control(self, order: dict[str, Any]) -> None:
        """Script the next answers for a path, teach a secret, or clear (see the module)."""
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            f"{self.url}control",
            data=json.dumps(order).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - our own loopback URL
            pass

    def _get(self, what: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}{what}", timeout=5) as answer:  # noqa: S310 - our own loopback URL
            found: list[dict[str, Any]] = json.loads(answer.read())
        return found

    def messages(self, path: str | None = None) -> list[dict[str, Any]]:
        """The posts accepted (2xx), oldest first; only those to `path` when given."""
        return [m for m in self._get("messages.json") if path is None or m["path"] == path]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every post with the status the sink answered."""
        return [m for m in self._get("requests.json") if path is None or m["path"] == path]
