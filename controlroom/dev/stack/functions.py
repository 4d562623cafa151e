"""Our own Cloud Functions, served locally by functions-framework exactly as in the cloud."""

from __future__ import annotations

import sys
from pathlib import Path

from controlroom.dev.stack.process import StandIn

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


class FunctionServer(StandIn):
    """`functions-framework --target NAME` for functions/NAME/main.py, on 127.0.0.1."""

    def __init__(
        self,
        function: str,
        log_dir: Path,
        port: int,
        env: dict[str, str],
        instance: str | None = None,
    ) -> None:
        super().__init__(log_dir, port)
        self.function = function
        self.name = instance or function  # names the log file; several instances may run
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            self.function,
            "--source",
            str(FUNCTIONS_DIR / self.function / "main.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        return argv, self.env


class RelayServer(StandIn):
    """realtime/ under uvicorn, as on Cloud Run (per-message deflate off)."""

    def __init__(self, name: str, log_dir: Path, port: int, env: dict[str, str]) -> None:
        super().__init__(log_dir, port)
        self.name = name
        self.env = env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "realtime.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--ws-per-message-deflate",
            "false",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        return argv, self.env


class IdentityProvider(StandIn):
    """The identity provider's stand-in: serves the development JWKS over HTTP."""

    name = "identity"

    def __init__(self, directory: Path, log_dir: Path, port: int) -> None:
        super().__init__(log_dir, port)
        self.directory = directory

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            sys.executable,
            "-m",
            "http.server",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(self.directory),
        ]
        return argv, None
