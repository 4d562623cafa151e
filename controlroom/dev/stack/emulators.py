"""The Google and AWS stand-ins: Cloud Tasks emulator, Firestore emulator, moto's S3 server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from controlroom.dev.stack.process import StackError, StandIn

_HERE = Path(__file__).resolve().parent


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise StackError(f"{what} is missing at {path}; run `make install` first")
    return path


class TasksEmulator(StandIn):
    """gcloud-tasks-emulator, run from its own virtual environment, bound to loopback; a
    graceful restart keeps the queued tasks (see tasks_launcher.py)."""

    name = "cloud-tasks-emulator"

    def __init__(self, python: Path, log_dir: Path, port: int) -> None:
        super().__init__(log_dir, port)
        self.python = python

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        python = _require(self.python, "the Cloud Tasks emulator's virtual environment")
        launcher = _HERE / "tasks_launcher.py"
        state = self.log_dir.parent / "cloud-tasks-state.json"  # queued tasks across a restart
        argv = [str(python), "-W", "ignore", str(launcher), "--port", str(self.port)]
        return [*argv, "--state", str(state)], None


class FirestoreEmulator(StandIn):
    """@firestore-emulator/server under Node, bound to loopback; state lives in memory."""

    name = "firestore-emulator"

    def __init__(self, node_modules: Path, log_dir: Path, port: int) -> None:
        super().__init__(log_dir, port)
        self.node_modules = node_modules

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        _require(self.node_modules / "@firestore-emulator" / "server", "the Firestore emulator")
        env = {**os.environ, "FIRESTORE_EMULATOR_MODULES": str(self.node_modules)}
        return ["node", str(_HERE / "firestore_emulator.mjs"), str(self.port)], env


class MotoS3(StandIn):
    """moto in server mode, answering the S3 API on loopback; state lives in memory."""

    name = "moto-s3"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], None
