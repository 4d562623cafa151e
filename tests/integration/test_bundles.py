"""Each deployable as it ships, done here without Docker or Cloud Functions: `make build`'s
folder installs alone into a clean virtual environment from its own requirements.txt (hashes
checked, nothing else on the path), then the image context serves and each function answers a
request from there, with only its own packages installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controlroom.adapters import s3
from controlroom.core import eventsub, handoff
from controlroom.dev import build, twitchsim
from controlroom.dev.stack import Endpoints
from controlroom.dev.stack.process import free_port
from tests.samples import load, message

# packages a bundle must not carry: the heavy ones of the other deployables
ABSENT = {
    "webhook": ("pyarrow", "fastapi", "socketio", "engineio", "boto3", "jwt"),
    "persist": ("pyarrow", "fastapi", "boto3", "jwt", "google.cloud.firestore"),
    "subscriptions": ("pyarrow", "fastapi", "socketio", "boto3", "google.cloud.tasks_v2"),
    "archive": ("fastapi", "socketio", "redis", "jwt", "google.cloud.tasks_v2"),
    "pulse": ("pyarrow", "fastapi", "boto3", "jwt", "google.cloud.firestore"),
    "notify": ("pyarrow", "fastapi", "socketio", "boto3", "jwt", "google.cloud.firestore"),
    "realtime": ("pyarrow", "functions_framework", "google.cloud.firestore"),
}

# run inside a bundle's environment: one request through functions-framework's own app
PROBE = """
import importlib.util, json, sys
spec = json.load(sys.stdin)
import controlroom
from functions_framework import create_app
client = create_app(spec["target"], "main.py").test_client()
answer = client.post("/", data=bytes.fromhex(spec["body"]), headers=spec["headers"])
print(json.dumps({
    "status": answer.status_code,
    "body": answer.get_data(as_text=True),
    "controlroom": controlroom.__file__,
    "present": [m for m in spec["absent"] if importlib.util.find_spec(m.split(".")[0]) and
                importlib.util.find_spec(m)],
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def _install(context: Path, wheelhouse: Path, venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q"),
            *("--no-index", "--find-links", str(wheelhouse), "--require-hashes", "--no-deps"),
            *("-r", str(context / "requirements.txt")),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return python


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, Path]]]:
    """name -> (build folder, its environment's python), every deployable built and installed."""
    root = tmp_path_factory.mktemp("bundles")
    made = {p.name: p for p in build.build(root / "build")}
    assert set(made) == set(build.DEPLOYABLES)
    # one download of every pinned file, hashes checked; each bundle then installs offline
    wheelhouse = root / "wheelhouse"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes"),
            *("-d", str(wheelhouse)),
            *(arg for p in made.values() for arg in ("-r", str(p / "requirements.txt"))),
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        pythons = {
            name: pool.submit(_install, path, wheelhouse, root / f"venv-{name}")
            for name, path in made.items()
        }
        yield {name: (made[name], future.result()) for name, future in pythons.items()}


def _env(endpoints: Endpoints, **extra: str) -> dict[str, str]:
    env = {**os.environ, **endpoints.env(), **extra}
    env.pop("PYTHONPATH", None)
    return env


def _probe(
    bundle: tuple[Path, Path],
    target: str,
    env: dict[str, str],
    body: bytes,
    headers: dict[str, str],
) -> dict[str, Any]:
    context, python = bundle
    spec = {"target": target, "body": body.hex(), "headers": headers, "absent": ABSENT[target]}
    done = subprocess.run(
        [str(python), "-c", PROBE],
        cwd=context,
        env=env,
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    # it ran from the bundle's copy of controlroom, not from this checkout
    assert answer["controlroom"].startswith(str(context))
    assert answer["present"] == []
    assert not {"pytest", "coverage", "moto", "yoyo"} & set(answer["loaded"])
    return answer


def test_bundles_hold_their_own_locked_requirements_and_no_dev_tooling(
    bundles: dict[str, tuple[Path, Path]],
) -> None:
    for name, (context, _python) in bundles.items():
        assert (context / "requirements.txt").read_text() == build.requirements(name)
        package = context / "controlroom"
        assert not {p.name.removesuffix(".py") for p in package.iterdir()} & set(build.DEV_MODULES)
        assert not list(context.rglob("__pycache__"))


def test_the_webhook_answers_twitchs_challenge(
    bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints
) -> None:
    # a stack without our services has no persist to name; the challenge never reaches it
    env = _env(endpoints, PERSIST_URL="http://127.0.0.1:9/")
    raw = message("webhook_callback_verification")
    delivery = twitchsim.sign_delivery(
        raw, env["EVENTSUB_SECRET"], message_type=eventsub.VERIFICATION
    )
    answer = _probe(bundles["webhook"], "webhook", env, delivery.body, delivery.headers)
    assert answer["status"] == 200
    assert answer["body"] == json.loads(raw)["challenge"]


def test_persist_stores_a_task(bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints) -> None:
    env = _env(endpoints)
    signed = twitchsim.sign_delivery(load("channel.follow"), env["EVENTSUB_SECRET"])
    now = datetime.now(UTC)
    delivery = eventsub.verify_delivery(
        signed.headers, signed.body, [env["EVENTSUB_SECRET"].encode()], now
    )
    task = handoff.PersistTask.from_delivery(delivery, now).encode()
    answer = _probe(bundles["persist"], "persist", env, task, {"Content-Type": "application/json"})
    assert answer["status"] == 204, answer["body"]


def test_subscriptions_answers_without_twitch_configured(
    bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints
) -> None:
    answer = _probe(bundles["subscriptions"], "subscriptions", _env(endpoints), b"", {})
    assert answer["status"] == 200, answer["body"]
    assert json.loads(answer["body"]) == {"status": "not configured"}


def test_pulse_answers_without_twitch_configured(
    bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints
) -> None:
    answer = _probe(bundles["pulse"], "pulse", _env(endpoints), b"", {})
    assert answer["status"] == 200, answer["body"]
    assert json.loads(answer["body"]) == {"status": "not configured"}


def test_notify_answers_a_task_for_no_delivery(
    bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints
) -> None:
    body = json.dumps({"company_id": str(uuid.uuid4()), "delivery_id": str(uuid.uuid4())})
    answer = _probe(
        bundles["notify"],
        "notify",
        _env(endpoints),
        body.encode(),
        {"Content-Type": "application/json"},
    )
    assert answer["status"] == 200, answer["body"]
    assert json.loads(answer["body"])["status"] == "none"


def test_archive_runs_once(bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints) -> None:
    bucket = f"bundle-test-{uuid.uuid4().hex[:8]}"
    s3.client(endpoints.s3_endpoint_url, credentials=("local", "local")).create_bucket(
        Bucket=bucket
    )
    answer = _probe(bundles["archive"], "archive", _env(endpoints, ARCHIVE_BUCKET=bucket), b"", {})
    assert answer["status"] == 200, answer["body"]
    assert json.loads(answer["body"])["failed"] == 0


def _image_command(python: Path, port: int) -> list[str]:
    """The image's own CMD, read from its Dockerfile, on loopback and a free port."""
    text = (Path(__file__).resolve().parents[2] / "realtime" / "Dockerfile").read_text()
    line = text.split("\nCMD ", 1)[1].split("]", 1)[0] + "]"
    argv: list[str] = json.loads(line.replace("\\\n", " "))
    assert argv[0] == "uvicorn", argv
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return [str(python), "-m", *argv]


def test_the_image_context_installs_and_serves(
    bundles: dict[str, tuple[Path, Path]], endpoints: Endpoints, tmp_path: Path
) -> None:
    context, python = bundles["realtime"]
    port = free_port()
    env = _env(
        endpoints,
        DASHBOARD_DIR=str(tmp_path / "no-dashboard"),
        PUBLIC_URL=f"http://127.0.0.1:{port}",  # sign-in is configured: it needs its origin
    )
    server = subprocess.Popen(
        _image_command(python, port),
        cwd=context,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    answer = r.read()
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.3)
        if answer is None:
            server.terminate()
            printed = server.communicate(timeout=10)[0].decode(errors="replace")
            pytest.fail(f"the image never answered /healthz; it printed:\n{printed[-3000:]}")
        assert answer == b'{"status":"ok"}'
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as r:
            assert b'"/api/creators"' in r.read()
        out = subprocess.run(
            [str(python), "-c", "import controlroom, pyarrow"],
            cwd=context,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "No module named 'pyarrow'" in out.stderr  # the archive's package stays out
    finally:
        server.terminate()
        server.wait(10)
