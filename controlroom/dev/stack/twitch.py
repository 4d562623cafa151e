"""The Twitch stand-in (controlroom/dev/twitchstub.py) as a process of the local stack."""

from __future__ import annotations

import sys
from pathlib import Path

from controlroom.dev.stack.process import StandIn

CLIENT_ID = "controlroom-local"


class TwitchStandIn(StandIn):
    """OAuth, Helix users and EventSub subscriptions on 127.0.0.1, for `make run` and tests."""

    name = "twitch"

    def __init__(self, log_dir: Path, port: int, client_secret: str) -> None:
        super().__init__(log_dir, port)
        self.client_id = CLIENT_ID
        self.client_secret = client_secret

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What the deployables read to talk to this stand-in instead of Twitch."""
        return {
            "TWITCH_CLIENT_ID": self.client_id,
            "TWITCH_CLIENT_SECRET": self.client_secret,
            "HELIX_API_URL": f"{self.url}/helix",
            "TWITCH_TOKEN_URL": f"{self.url}/oauth2/token",
            "TWITCH_AUTHORIZE_URL": f"{self.url}/oauth2/authorize",
            "TWITCH_VALIDATE_URL": f"{self.url}/oauth2/validate",
            # avatars and previews are the stand-in's placeholders (and the CSP allows them)
            "TWITCH_IMAGE_ORIGIN": self.url,
        }

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            sys.executable,
            "-m",
            "controlroom.dev.twitchstub",
            "--port",
            str(self.port),
            # one token each: a generated secret may begin with "-", which argparse would
            # otherwise read as an option (CI met one)
            f"--client-id={self.client_id}",
            f"--client-secret={self.client_secret}",
        ]
        return argv, None
