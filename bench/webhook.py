"""Webhook deliveries per second and time to 2xx, beside a bare 204 function on the same server.

Both run under functions-framework (gunicorn, its default worker and threads) on 127.0.0.1,
fed by the same closed-loop generator with 8 keep-alive connections. The webhook's work per
delivery: verify the HMAC, create the ledger document in the Firestore emulator, create the
task in the Cloud Tasks emulator, mark the ledger entry. Its tasks go to the bare function, so
the emulator's dispatching costs little and no database is involved.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import load
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import FunctionServer
from controlroom.dev.stack.process import free_port

BARE_SOURCE = Path(__file__).resolve().parent / "bare_function" / "main.py"


class BareFunction(FunctionServer):
    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv, env = super().command()
        argv[argv.index("--source") + 1] = str(BARE_SOURCE)
        return argv, env


def _deliveries(secret: str, count: int) -> list[load.Request]:
    creators = [twitchsim.Broadcaster(i, login) for i, login, _ in seed.DEMO_CREATORS]
    out = []
    for i in range(count):
        body = twitchsim.notification_body("channel.follow", creators[i % len(creators)])
        d = twitchsim.sign_delivery(body, secret)
        out.append(load.Request(d.body, d.headers))
    return out


def run(quick: bool = False) -> dict[str, float]:
    count = 300 if quick else 3000
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp))
        endpoints = stack.start()
        bare = BareFunction("bare", Path(tmp) / "logs", free_port(), {**os.environ})
        bare.start()
        webhook_port = free_port()
        env = {**os.environ, **endpoints.env(), "PERSIST_URL": f"http://127.0.0.1:{bare.port}/"}
        webhook = FunctionServer("webhook", Path(tmp) / "logs", webhook_port, env)
        webhook.start()
        try:
            secret = endpoints.eventsub_secret
            load.run(webhook.url, _deliveries(secret, 50))  # warm both up
            load.run(bare.url, _deliveries(secret, 50))
            real = load.run(webhook.url, _deliveries(secret, count))
            baseline = load.run(bare.url, _deliveries(secret, count))
            steady = load.run(webhook.url, _deliveries(secret, count // 5), rate=50.0)
            steady_bare = load.run(bare.url, _deliveries(secret, count // 5), rate=50.0)
        finally:
            webhook.stop()
            bare.stop()
            stack.stop()
    assert set(real.statuses) == {204}, real.statuses
    print(f"{count} deliveries, 8 concurrent keep-alive connections, one server process each")
    print(f"{'':<34}{'deliveries/s':>14}{'p50 ms':>10}{'p99 ms':>10}")
    for label, r in (
        ("webhook (verify+ledger+enqueue)", real),
        ("bare 204 function (baseline)", baseline),
    ):
        print(f"{label:<34}{r.rate:>14,.0f}{r.p50:>10.1f}{r.pct(0.99):>10.1f}")
    print(f"{'ratio webhook / bare':<34}{real.rate / baseline.rate:>14.2f}")
    print(f"\nsteady 50 deliveries/s ({count // 5} deliveries), time to 2xx:")
    print(f"{'':<34}{'p50 ms':>10}{'p99 ms':>10}")
    for label, r in (("webhook", steady), ("bare 204 function", steady_bare)):
        print(f"{label:<34}{r.p50:>10.1f}{r.pct(0.99):>10.1f}")
    return {"webhook_rate": real.rate, "bare_rate": baseline.rate, "steady_p99": steady.pct(0.99)}
