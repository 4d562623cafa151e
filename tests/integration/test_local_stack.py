"""The local stack as people use it: `controlroom stack` comes up, seeds, and leaves nothing."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from controlroom.dev import dbadmin, seed
from controlroom.dev.stack import LocalStack, StackError, Tools

LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}


def _listening_addresses(pids: set[int]) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids
    }


def _tree(pid: int) -> set[int]:
    try:
        parent = psutil.Process(pid)
        return {pid, *(child.pid for child in parent.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def test_every_stand_in_listens_on_loopback_only(local_stack: LocalStack) -> None:
    pids: set[int] = set()
    for stand_in in local_stack.processes():
        assert stand_in.process is not None and stand_in.process.pid is not None
        pids |= _tree(stand_in.process.pid)
    addresses = _listening_addresses(pids)
    assert addresses, "no listening socket found for the stand-ins"
    assert addresses <= LOOPBACK


def test_migrations_are_idempotent(local_stack: LocalStack) -> None:
    assert local_stack.endpoints is not None
    assert dbadmin.migrate(local_stack.endpoints.owner_url) == 0


def _read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = shlex.split(value)[0]
    return values


def _run_stack_until_ready(root: Path, env_file: Path) -> tuple[subprocess.Popen[str], str]:
    env_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controlroom.dev.cli",
            "stack",
            "--root",
            str(root),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not env_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the stack did not come up:\n{proc.communicate()[0]}")
        time.sleep(0.2)
    time.sleep(0.5)  # the summary is printed right after the file is written
    return proc, ""


def _interrupt(proc: subprocess.Popen[str]) -> str:
    children = _tree(proc.pid) - {proc.pid}
    assert children, "the stack started no child processes"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    time.sleep(0.2)
    survivors = [
        pid
        for pid in children
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert survivors == [], f"left behind: {survivors}"
    return output


def test_stack_command_seeds_persists_and_stops_cleanly(tmp_path: Path) -> None:
    root, env_file = tmp_path / "stack", tmp_path / "stack.env"
    proc, _ = _run_stack_until_ready(root, env_file)
    env = _read_env(env_file)
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "CLOUD_TASKS_EMULATOR_HOST",
        "FIRESTORE_EMULATOR_HOST",
        "AWS_ENDPOINT_URL_S3",
        "DEMO_COMPANY_ID",
    ):
        assert key in env
    with psycopg.connect(env["DATABASE_URL"]) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.company_id', %s, true)", (env["DEMO_COMPANY_ID"],))
        creators = conn.execute("SELECT count(*) FROM creators").fetchone()
        conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, '424242', 'kept_between_runs', 'Kept')",
            (env["DEMO_COMPANY_ID"],),
        )
    assert creators == (len(seed.DEMO_CREATORS),)
    output = _interrupt(proc)
    assert "The local stack is up" in output
    assert "nothing left running" in output

    # a second run finds its data again and seeds nothing twice
    proc, _ = _run_stack_until_ready(root, env_file)
    env = _read_env(env_file)
    with psycopg.connect(env["DATABASE_URL"]) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.company_id', %s, true)", (env["DEMO_COMPANY_ID"],))
        creators = conn.execute("SELECT count(*) FROM creators").fetchone()
        audits = conn.execute("SELECT count(*) FROM audit_logs").fetchone()
        channels = conn.execute("SELECT count(*) FROM notification_channels").fetchone()
    assert creators == (len(seed.DEMO_CREATORS) + 1,)
    assert channels == (1,)  # the demo alert channel, posting to the notification sink
    assert audits == (2,)  # the company and its alert channel, each created once
    _interrupt(proc)


def test_stack_refuses_clearly_when_a_tool_is_missing(tmp_path: Path) -> None:
    tools = Tools(tasks_python=tmp_path / "nope" / "python", firestore_modules=tmp_path / "nope")
    stack = LocalStack(tmp_path / "stack", tools=tools)
    with pytest.raises(StackError, match="make install"):
        stack.start()
    assert stack.processes() == []
    assert os.listdir(tmp_path / "stack")  # it had started (and then stopped) PostgreSQL
