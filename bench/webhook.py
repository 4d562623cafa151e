"""Webhook deliveries per second and time to 2xx, beside a bare 204 function on the same server.

Both run under functions-framework (gunicorn, its default worker and threads) on 127.0.0.1,
fed by the same closed-loop generator with 8 keep-alive connections. The webhook's work per
delivery: verify the HMAC, create the task in the Cloud Tasks stand-in (named after the
message id), create the ledger document in the Firestore emulator. Its tasks go to the bare
function, so no database is involved.

The queue is paused while the closed-loop runs are measured, and resumed after: in the cloud
Cloud Tasks dispatches on Google's machines and persist runs on its own instances, but here
the stand-in's dispatching and the function it calls would share the two cores with the
webhook and be measured as its cost (about 2 ms of CPU per delivery, more than the bare
function's whole request). Every task must then be held in the queue, one per delivery, and
dispatched once it resumes. BENCH_WEBHOOK_DISPATCH=on measures with the queue running, as
the earlier figures in docs/benchmarks.md were.

With BENCH_WEBHOOK_BEFORE set to another checkout of the repository (for example a
`git worktree` of an earlier commit), that checkout's webhook runs too, on the same stand-ins
and in the same run, so a change is measured beside what it replaced.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psutil
from google.cloud import tasks_v2

from bench import load
from controlroom.adapters import cloudtasks
from controlroom.dev import seed, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import FunctionServer
from controlroom.dev.stack.process import free_port

BARE_SOURCE = Path(__file__).resolve().parent / "bare_function" / "main.py"


class CheckoutWebhook(FunctionServer):
    """functions/webhook of another checkout, importing that checkout's controlroom."""

    def __init__(self, checkout: Path, log_dir: Path, port: int, env: dict[str, str]) -> None:
        env = {**env, "PYTHONPATH": str(checkout)}
        super().__init__("webhook", log_dir, port, env, instance="webhook-before")
        self.checkout = checkout

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv, env = super().command()
        argv[argv.index("--source") + 1] = str(self.checkout / "functions" / "webhook" / "main.py")
        # -P: `python -m` would put the working directory (this checkout) ahead of PYTHONPATH
        argv.insert(1, "-P")
        return argv, env


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


def _tree(server: FunctionServer) -> list[psutil.Process]:
    """The function's process and its children (gunicorn's worker)."""
    assert server.process is not None and server.process.pid is not None
    proc = psutil.Process(server.process.pid)
    return [proc, *proc.children(recursive=True)]


def _cpu(procs: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _tasks_held(client: tasks_v2.CloudTasksClient, queue: str) -> int:
    return len(list(client.list_tasks(parent=queue)))


def _drain(client: tasks_v2.CloudTasksClient, queue: str, timeout: float = 300.0) -> None:
    """Wait until the resumed queue has dispatched every task it held."""
    deadline = time.monotonic() + timeout
    while (left := _tasks_held(client, queue)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} tasks still queued {timeout:.0f} s after resuming")
        time.sleep(0.5)


def run(quick: bool = False) -> dict[str, float]:
    count = 300 if quick else 3000
    before_dir = os.environ.get("BENCH_WEBHOOK_BEFORE")
    dispatching = os.environ.get("BENCH_WEBHOOK_DISPATCH", "off") == "on"
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp))
        endpoints = stack.start()
        bare = BareFunction("bare", Path(tmp) / "logs", free_port(), {**os.environ})
        bare.start()
        env = {**os.environ, **endpoints.env(), "PERSIST_URL": f"http://127.0.0.1:{bare.port}/"}
        webhook = FunctionServer("webhook", Path(tmp) / "logs", free_port(), env)
        webhook.start()
        before = None
        if before_dir:
            before = CheckoutWebhook(Path(before_dir), Path(tmp) / "logs", free_port(), env)
            before.start()
        secret = endpoints.eventsub_secret
        closed: dict[str, load.Result] = {}
        steady: dict[str, load.Result] = {}
        cpu_us: dict[str, float] = {}  # the server process tree's CPU per delivery
        # the same webhook with the forgery limit's buckets in process memory (REDIS_URL
        # unset, a supported configuration): what the per-delivery Valkey peek costs
        local_env = {k: v for k, v in env.items() if k != "REDIS_URL"}
        local = FunctionServer("webhook", Path(tmp) / "logs", free_port(), local_env, "webhook-mem")
        local.start()
        servers = {
            "webhook": webhook,
            "local": local,
            "bare": bare,
            **({"before": before} if before else {}),
        }
        tasks = cloudtasks.client(endpoints.tasks_emulator_host)
        queue = cloudtasks.queue_path(
            env["GOOGLE_CLOUD_PROJECT"], env["CLOUD_TASKS_LOCATION"], env["CLOUD_TASKS_QUEUE"]
        )
        try:
            for server in servers.values():  # warm each up
                load.run(server.url, _deliveries(secret, 50))
            _drain(tasks, queue)
            if not dispatching:
                tasks.pause_queue(name=queue)
            for name, server in servers.items():
                procs = _tree(server)
                cpu = _cpu(procs)
                closed[name] = load.run(server.url, _deliveries(secret, count))
                cpu_us[name] = (_cpu(procs) - cpu) / count * 1e6
            if not dispatching:
                held = _tasks_held(tasks, queue)
                webhooks = len(servers) - 1  # all but the bare function enqueue
                assert held == webhooks * count, f"{held} tasks held, {webhooks * count} enqueued"
                tasks.resume_queue(name=queue)
                print(f"queue paused while measured: {held:,} tasks held, one per delivery")
                _drain(tasks, queue)
            for name, server in servers.items():
                steady[name] = load.run(server.url, _deliveries(secret, count // 5), rate=50.0)
        finally:
            for server in servers.values():
                server.stop()
            stack.stop()
    return _report(count, closed, steady, cpu_us, before_dir, dispatching=dispatching)


def _report(
    count: int,
    closed: dict[str, load.Result],
    steady: dict[str, load.Result],
    cpu_us: dict[str, float],
    before_dir: str | None,
    *,
    dispatching: bool,
) -> dict[str, float]:
    for name in ("webhook", "local", "before"):
        if name in closed:
            assert set(closed[name].statuses) == {204}, (name, closed[name].statuses)
    labels = {
        "before": f"webhook before ({Path(before_dir).name if before_dir else ''})",
        "webhook": "webhook (verify+enqueue+ledger)",
        "local": "  the same, limiter in memory",
        "bare": "bare 204 function (baseline)",
    }
    order = [n for n in ("before", "webhook", "local", "bare") if n in closed]
    bare_rate = closed["bare"].rate
    queue = "dispatching" if dispatching else "paused, dispatched after"
    print(f"{count} deliveries, 8 concurrent keep-alive connections, one server process each")
    print(f"(the queue: {queue})")
    print(f"{'':<34}{'deliveries/s':>14}{'p50 ms':>10}{'p99 ms':>10}{'/ bare':>9}{'CPU µs':>9}")
    for name in order:
        r = closed[name]
        ratio = r.rate / bare_rate
        print(
            f"{labels[name]:<34}{r.rate:>14,.0f}{r.p50:>10.1f}{r.pct(0.99):>10.1f}{ratio:>9.2f}"
            f"{cpu_us[name]:>9,.0f}"
        )
    print("(CPU µs: the server process's own CPU time per delivery, the stand-ins' not counted)")
    print(f"\nsteady 50 deliveries/s ({count // 5} deliveries), time to 2xx:")
    print(f"{'':<34}{'p50 ms':>10}{'p99 ms':>10}")
    for name in order:
        r = steady[name]
        print(f"{labels[name]:<34}{r.p50:>10.1f}{r.pct(0.99):>10.1f}")
    result = {
        "webhook_rate": closed["webhook"].rate,
        "bare_rate": bare_rate,
        "steady_p99": steady["webhook"].pct(0.99),
    }
    result["memory_limiter_rate"] = closed["local"].rate
    result["cpu_us_webhook"] = cpu_us["webhook"]
    result["cpu_us_bare"] = cpu_us["bare"]
    if "before" in closed:
        result["before_rate"] = closed["before"].rate
    return result
