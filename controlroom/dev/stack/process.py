"""A child process of the local stack: started in its own group, awaited, stopped cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


class StackError(RuntimeError):
    """A stand-in did not start or answer; the message says which and why."""


def _die_with_parent() -> None:
    # If the stack's own process is killed outright, the kernel stops its children too,
    # so no stand-in outlives a crashed test session or `make run`.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def drop_privileges(user: str | None) -> dict[str, Any]:
    """subprocess arguments that run a child as `user` with that user's group and no others."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ManagedProcess:
    """One stand-in server: its command line, its log file, and how to stop it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.user = user
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                **drop_privileges(self.user),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets the death signal
            )
        except OSError as exc:
            raise StackError(f"{self.name}: cannot start {self.argv[0]}: {exc}") from exc
        finally:
            log.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it is true; fail with the log's tail if the process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise StackError(
                    f"{self.name} exited before {what}; last log lines:\n{self.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise StackError(
            f"{self.name} did not {what} within {timeout:.0f}s; last log lines:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Signal the whole process group, wait, then kill what is left."""
        self.signal_stop()
        self.wait_stopped(timeout)

    def signal_stop(self) -> None:
        """Ask the whole process group to stop, without waiting."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, self.stop_signal)

    def wait_stopped(self, timeout: float = 15.0) -> None:
        """Wait for a stop asked for, then kill what is left."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        # children that outlived the leader (none expected) go too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault tests."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)


class StandIn:
    """A local stand-in for a cloud service: one process on 127.0.0.1:`port`."""

    name = "stand-in"
    start_timeout = 60.0
    stop_signal = signal.SIGTERM

    def __init__(self, log_dir: Path, port: int) -> None:
        self.log_dir = log_dir
        self.port = port
        self.process: ManagedProcess | None = None

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        """The command line and environment (None: inherit) that start the server."""
        raise NotImplementedError

    def run_as(self) -> str | None:
        return None

    def prepare(self) -> None:
        """Work before the first start (data folders, say)."""

    def ready(self) -> bool:
        return tcp_answers("127.0.0.1", self.port)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Prepare and start the process without waiting for it to answer."""
        self.prepare()
        argv, env = self.command()
        self.process = ManagedProcess(
            self.name,
            argv,
            self.log_dir / f"{self.name}.log",
            env=env,
            user=self.run_as(),
            stop_signal=self.stop_signal,
        )
        self.process.start()

    def wait_ready(self) -> None:
        assert self.process is not None, f"{self.name} was not launched"
        self.process.wait_until(self.ready, self.start_timeout, "answer")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def signal_stop(self) -> None:
        if self.process is not None:
            self.process.signal_stop()

    def wait_stopped(self) -> None:
        if self.process is not None:
            self.process.wait_stopped()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
