"""The Dockerfile's steps, done here without Docker: a clean virtual environment installs the
image's requirements.txt and starts realtime/ from the build folder, as the image would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from controlroom import build
from controlroom.stack import Endpoints
from controlroom.stack.process import free_port


def test_the_image_context_installs_and_serves(endpoints: Endpoints, tmp_path: Path) -> None:
    build.build(tmp_path / "build")
    context = tmp_path / "build" / "realtime"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-r", str(context / "requirements.txt")],
        check=True,
        timeout=600,
        capture_output=True,
    )
    port = free_port()
    env = {**os.environ, **endpoints.env(), "DASHBOARD_DIR": str(tmp_path / "no-dashboard")}
    env.pop("PYTHONPATH", None)
    server = subprocess.Popen(
        [
            str(venv / "bin" / "uvicorn"),
            "--factory",
            "realtime.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ws-per-message-deflate",
            "false",
            "--no-access-log",
        ],
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
                time.sleep(0.3)
        assert answer == b'{"status":"ok"}'
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=5) as r:
            assert b'"/api/creators"' in r.read()
        # it runs from the copied package, not from this checkout
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import controlroom; print(controlroom.__file__)"],
            cwd=context,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.startswith(str(context))
    finally:
        server.terminate()
        server.wait(10)
