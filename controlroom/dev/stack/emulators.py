"""The Google and AWS stand-ins: our Cloud Tasks stand-in, Firestore emulator, moto's S3 server."""

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
    """Our Cloud Tasks stand-in (tasks_standin.py) on loopback: concurrent dispatch within the
    queue's limits, its retry backoff, named-task deduplication; a graceful restart keeps the
    queues, the queued tasks and the names still refused."""

    name = "cloud-tasks-emulator"

    def __init__(
        self, python: Path, log_dir: Path, port: int, dedup_window: float | None = None
    ) -> None:
        super().__init__(log_dir, port)
        self.python = python
        self.dedup_window = dedup_window

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        python = _require(self.python, "the Python that runs the Cloud Tasks stand-in")
        standin = _HERE / "tasks_standin.py"
        state = self.log_dir.parent / "cloud-tasks-state.json"  # queued tasks across a restart
        argv = [str(python), str(standin), "--port", str(self.port), "--state", str(state)]
        if self.dedup_window is not None:
            argv += ["--dedup-window", str(self.dedup_window)]
        return argv, None


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
