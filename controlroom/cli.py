"""The `controlroom` command: the local stack, database administration, audit checks."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType

from controlroom import audit, db, dbadmin, logs, settings


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_stack(args: argparse.Namespace) -> int:
    """Run every stand-in until Ctrl-C, with the demo company seeded."""
    from controlroom import seed
    from controlroom.stack import LocalStack, write_env_file

    root = Path(args.root).resolve()
    stop = _stop_on_sigterm()
    stack = LocalStack(root, durable=True, progress=lambda msg: print(f"  {msg}", flush=True))
    print("Creator Control Room: starting the local stack", flush=True)
    try:
        endpoints = stack.start()
        with db.connect(settings.DatabaseSettings.from_env(endpoints.env())) as conn:
            result = seed.seed_demo(conn)
        env = {
            **endpoints.env(),
            "DEMO_COMPANY_ID": str(result.company_id),
            "DEMO_ADMIN_SUBJECT": result.admin_subject,
        }
        write_env_file(Path(args.env_file), env)
        _print_summary(stack, env, Path(args.env_file))
        stop.wait()
    finally:
        print("\nstopping the local stack ...", flush=True)
        stack.stop()
        print("stopped; nothing left running.", flush=True)
    return 0


def _print_summary(stack: object, env: dict[str, str], env_file: Path) -> None:
    rows = [
        ("PostgreSQL (runtime role)", env["DATABASE_URL"].split("@")[-1]),
        ("Valkey (Redis)", env["REDIS_URL"]),
        ("Cloud Tasks emulator", env["CLOUD_TASKS_EMULATOR_HOST"]),
        ("Firestore emulator", env["FIRESTORE_EMULATOR_HOST"]),
        ("S3 (moto)", env["AWS_ENDPOINT_URL_S3"]),
        ("demo company", env["DEMO_COMPANY_ID"]),
    ]
    print("\nThe local stack is up:")
    for name, where in rows:
        print(f"  {name:<28} {where}")
    print(f"\nEvery endpoint and development credential: {env_file} (source it).")
    print("Press Ctrl-C to stop everything.", flush=True)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    dbadmin.bootstrap(
        settings.require("DATABASE_ADMIN_URL"),
        args.database,
        settings.require("DATABASE_OWNER_PASSWORD"),
        settings.require("DATABASE_APP_PASSWORD"),
    )
    print(f"roles and database {args.database!r} are ready")
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    applied = dbadmin.migrate(settings.require("DATABASE_OWNER_URL"))
    print(f"{applied} migration(s) applied")
    return 0


def cmd_seed(_args: argparse.Namespace) -> int:
    from controlroom import seed

    with db.connect() as conn:
        result = seed.seed_demo(conn)
    print(f"demo company {result.company_id} {'created' if result.created else 'already there'}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    company = uuid.UUID(args.company)
    with db.connect() as conn, db.tenant_transaction(conn, company):
        report = audit.verify_chain(conn)
    if report.intact:
        print(f"audit chain intact: {report.checked} row(s) checked")
        return 0
    print(f"audit chain BROKEN at row {report.first_bad_id}: {report.reason}")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlroom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="run the local stack until Ctrl-C")
    stack.add_argument("--root", default=".local/stack", help="where the stack keeps its data")
    stack.add_argument("--env-file", default=".local/stack.env", help="where to write endpoints")
    stack.set_defaults(func=cmd_stack)

    dbp = sub.add_parser("db", help="database administration")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    boot = dbsub.add_parser("bootstrap", help="create the roles and the database (admin URL)")
    boot.add_argument("--database", default="controlroom")
    boot.set_defaults(func=cmd_bootstrap)
    dbsub.add_parser("migrate", help="apply SQL migrations as the owner").set_defaults(
        func=cmd_migrate
    )

    sub.add_parser("seed", help="create the demo company (idempotent)").set_defaults(func=cmd_seed)

    aud = sub.add_parser("audit", help="audit trail")
    audsub = aud.add_subparsers(dest="audit_command", required=True)
    verify = audsub.add_parser("verify", help="verify a company's hash chain")
    verify.add_argument("--company", required=True, help="company id (UUID)")
    verify.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    logs.configure(os.environ.get("LOG_LEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except settings.SettingsError as exc:
        print(f"controlroom: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
