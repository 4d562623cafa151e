"""The official JavaScript client (socket.io-client under Node) against the relay."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from controlroom.dev.stack import LocalStack
from tests.integration.test_relay import Producer, agency, cfg, env, relays, stack, token

JS = Path(__file__).resolve().parents[1] / "js"
__all__ = ["cfg", "env", "relays", "stack"]  # module-scoped fixtures shared with test_relay


def run_client(
    url: str, auth_token: str, last_seq: int | None, seconds: float
) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            "node",
            str(JS / "feed.mjs"),
            url,
            auth_token,
            "-" if last_seq is None else str(last_seq),
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_js_client_connects_receives_and_resumes(
    stack: LocalStack, env: dict[str, str], cfg: Any, relays: Any
) -> None:
    company, _ = agency(cfg, "js-client", [])
    producer = Producer(cfg, env["REDIS_URL"], company)
    try:
        producer.store(20)  # already stored: the client resumes after seq 5
        timer = threading.Timer(2.0, lambda: producer.store(10))  # and these arrive live
        timer.start()
        lines = run_client(relays[1].url, token(stack, company, "js-client"), 5, seconds=5)
        timer.join()
    finally:
        producer.halt()
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "connect"
    assert "live" in kinds
    seqs = [line["data"]["seq"] for line in lines if line["kind"] == "event"]
    assert seqs == list(range(6, 31))
    refused = run_client(relays[0].url, "forged", None, seconds=1)
    assert refused[0] == {"kind": "connect_error", "data": "malformed token"}
