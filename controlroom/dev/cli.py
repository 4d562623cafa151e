"""The `controlroom` command: the local stack, database administration, audit checks."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import signal
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import psycopg

from controlroom import errors, logs, settings
from controlroom.adapters import db
from controlroom.dev import dbadmin, devkeys, twitchsim
from controlroom.usecases import audit


def _stop_on_sigterm() -> threading.Event:
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def cmd_stack(args: argparse.Namespace) -> int:
    """Run every stand-in until Ctrl-C, with the demo company seeded."""
    from controlroom.dev import seed
    from controlroom.dev.stack import LocalStack, write_env_file

    root = Path(args.root).resolve()
    stop = _stop_on_sigterm()
    stack = LocalStack(
        root, durable=True, services=True, progress=lambda msg: print(f"  {msg}", flush=True)
    )
    print("Creator Control Room: starting the local stack", flush=True)
    try:
        endpoints = stack.start()
        with db.connect(settings.DatabaseSettings.from_env(endpoints.env())) as conn:
            result = seed.seed_demo(conn)
            env0 = endpoints.env()
            if env0.get("NOTIFY_SINK_URL"):
                seed.seed_alert_channel(conn, env0["NOTIFY_SINK_URL"], env0["NOTIFICATION_KEYS"])
        token = stack.keys.token(result.admin_subject, result.company_id, "admin")
        env = {
            **endpoints.env(),
            "DEMO_COMPANY_ID": str(result.company_id),
            "DEMO_ADMIN_SUBJECT": result.admin_subject,
            "DEMO_ADMIN_TOKEN": token,
        }
        write_env_file(Path(args.env_file), env)
        _request_reconcile(env)
        _print_summary(env, Path(args.env_file))
        interval = settings.read_int("ARCHIVE_INTERVAL_SECONDS", 3600)
        threading.Thread(target=_archive_timer, args=(env, stop, interval), daemon=True).start()
        stop.wait()
    finally:
        print("\nstopping the local stack ...", flush=True)
        stack.stop()
        print("stopped; nothing left running.", flush=True)
    return 0


def _request_reconcile(env: dict[str, str]) -> None:
    """Cloud Scheduler's stand-in for the reconciler: one run once the demo company is seeded,
    so its creators' tiles show what needs authorization from the start."""
    from controlroom.adapters import cloudtasks, taskqueue
    from controlroom.errors import QueueUnavailableError

    if not (env.get("SUBSCRIPTIONS_URL") and env.get("SUBSCRIPTIONS_QUEUE")):
        return
    target = taskqueue.Target(
        queue_path=cloudtasks.queue_path(
            env["GOOGLE_CLOUD_PROJECT"], env["CLOUD_TASKS_LOCATION"], env["SUBSCRIPTIONS_QUEUE"]
        ),
        url=env["SUBSCRIPTIONS_URL"],
        service_account=None,
    )
    try:
        client = cloudtasks.client(env["CLOUD_TASKS_EMULATOR_HOST"])
        taskqueue.request_run(client, target, "make run started")
    except QueueUnavailableError:
        print("  (the first subscription reconcile was not queued)", flush=True)


def _archive_timer(env: dict[str, str], stop: threading.Event, interval: float) -> None:
    """Cloud Scheduler's stand-in: an archive run every `interval` seconds while the stack is up."""
    from controlroom.adapters import s3
    from controlroom.usecases import archive

    cfg = settings.ArchiveSettings.from_env(env)
    while not stop.wait(interval):
        try:
            with db.connect(cfg.database, autocommit=True) as conn:
                summary = archive.run(conn, s3.client(cfg.s3_endpoint_url, aws=cfg.aws), cfg.bucket)
        except Exception as exc:  # noqa: BLE001 - a timer must outlive one failed run
            print(f"  archive run failed: {type(exc).__name__}", flush=True)
            continue
        if summary.exported or summary.failed:
            print(
                f"  archive: {len(summary.exported)} company-day(s) exported, "
                f"{len(summary.failed)} failed",
                flush=True,
            )
        _purge(cfg, quiet=True)


def _print_summary(env: dict[str, str], env_file: Path) -> None:
    rows = [
        ("EventSub webhook", env.get("WEBHOOK_URL", "")),
        ("persist (Cloud Tasks target)", env.get("PERSIST_URL", "")),
        ("PostgreSQL (runtime role)", env["DATABASE_URL"].split("@")[-1]),
        ("Valkey (Redis)", env["REDIS_URL"]),
        ("Cloud Tasks emulator", env["CLOUD_TASKS_EMULATOR_HOST"]),
        ("Firestore emulator", env["FIRESTORE_EMULATOR_HOST"]),
        ("S3 (moto)", env["AWS_ENDPOINT_URL_S3"]),
        ("realtime relay (Socket.IO)", env.get("RELAY_URL", "")),
        ("identity provider (OIDC)", env.get("OIDC_ISSUER", "")),
        ("mail catcher (what was sent)", env.get("MAIL_CATCHER_URL", "")),
        ("notification sink (alerts)", env.get("NOTIFY_SINK_URL", "")),
        ("notify (Cloud Tasks target)", env.get("NOTIFY_URL", "")),
        ("Twitch stand-in (OAuth, Helix)", env.get("HELIX_API_URL", "").removesuffix("/helix")),
        ("subscriptions (reconciler)", env.get("SUBSCRIPTIONS_URL", "")),
        ("demo company", env["DEMO_COMPANY_ID"]),
    ]
    print("\nThe local stack is up:")
    for name, where in rows:
        print(f"  {name:<28} {where}")
    print(f"\nEvery endpoint and development credential: {env_file} (source it).")
    print(f"\nDashboard: {env.get('RELAY_URL', '')}  (sign in with the local identity provider;")
    print(f"  subject {env['DEMO_ADMIN_SUBJECT']} is the demo company's admin)")
    print("Watch the live feed in a terminal:  .venv/bin/controlroom watch --user demo-admin")
    print("Send Twitch-like traffic from another terminal:")
    print(f"  set -a; . {env_file}; set +a")
    print("  .venv/bin/controlroom trigger stream.online --broadcaster 1337")
    print("  .venv/bin/controlroom simulate --rate 20 --duration 30")
    print("Press Ctrl-C to stop everything.", flush=True)


def _broadcasters(spec: str | None) -> list[twitchsim.Broadcaster]:
    from controlroom.dev import seed

    if not spec:
        return [twitchsim.Broadcaster(i, login) for i, login, _ in seed.DEMO_CREATORS]
    found = []
    for item in spec.split(","):
        user_id, _, login = item.strip().partition(":")
        if not user_id.isdigit():
            raise SystemExit(f"controlroom: broadcaster {item!r} is not ID or ID:login")
        found.append(twitchsim.Broadcaster(user_id, login or f"creator_{user_id}"))
    return found


def cmd_trigger(args: argparse.Namespace) -> int:
    """Send one signed delivery (and optional repeats of it) to the webhook."""
    url, secret = settings.require("WEBHOOK_URL"), settings.require("EVENTSUB_SECRET")
    (broadcaster,) = _broadcasters(
        f"{args.broadcaster}:{args.login}" if args.login else args.broadcaster
    )
    try:
        body = twitchsim.notification_body(args.type, broadcaster)
        body["event"].update(_event_fields(args.set or []))
    except KeyError as exc:
        print(f"controlroom: {exc.args[0]}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"controlroom: {exc}", file=sys.stderr)
        return 2
    delivery = twitchsim.sign_delivery(body, secret)
    for attempt in range(1 + args.repeat):
        if attempt:
            delivery = twitchsim.sign_delivery(
                delivery.body, secret, message_id=delivery.message_id, retry=attempt
            )
        status, _ = twitchsim.post(url, delivery)
        print(f"{args.type} {delivery.message_id} attempt {attempt + 1}: HTTP {status}")
    return 0


def _event_fields(pairs: list[str]) -> dict[str, Any]:
    """`--set viewers=5000 --set from_broadcaster_user_name=Big`: whole numbers stay numbers,
    `true`, `false` and `null` are JSON's (`--set is_anonymous=true`), the rest is text."""
    fields: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--set takes FIELD=VALUE, not {pair!r}")
        fields[name] = _field_value(value)
    return fields


_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _field_value(value: str) -> Any:
    if value.lstrip("-").isdigit():
        return int(value)
    return _JSON_WORDS.get(value, value)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Twitch-like traffic at a rate, for a bounded time, then a summary."""
    url, secret = settings.require("WEBHOOK_URL"), settings.require("EVENTSUB_SECRET")
    if args.duration > 3600 or args.rate > 2000:
        print("controlroom: at most 3600 s and 2000 deliveries/s", file=sys.stderr)
        return 2
    broadcasters = _broadcasters(args.creators)
    stop_drift = _drift_viewers(broadcasters)
    try:
        report = twitchsim.simulate(
            url,
            secret,
            broadcasters,
            rate=args.rate,
            duration=args.duration,
            duplicates=args.duplicates,
            progress=lambda line: print(line, flush=True),
        )
    finally:
        stop_drift.set()
    latencies = sorted(report.latencies_ms or [0.0])
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"sent {report.sent} ({report.duplicates_sent} Twitch-style retries), "
        f"accepted {report.accepted}, refused {report.refused}; "
        f"time to answer p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    return 0 if report.refused == 0 else 1


def _drift_viewers(broadcasters: list[twitchsim.Broadcaster]) -> threading.Event:
    """While simulating against the local Twitch stand-in (HELIX_API_URL on loopback), its
    simulated streams are live with drifting viewer counts, which the pulse samples."""
    stop = threading.Event()
    helix = os.environ.get("HELIX_API_URL", "")
    if not helix.startswith(("http://127.0.0.1:", "http://localhost:")):
        return stop
    origin = helix.removesuffix("/").removesuffix("/helix")
    threading.Thread(
        target=twitchsim.drift_viewers, args=(origin, broadcasters, stop), daemon=True
    ).start()
    print(f"viewer counts of {len(broadcasters)} stream(s) drift at {origin}", flush=True)
    return stop


def _dev_keys() -> devkeys.DevKeys:
    return devkeys.DevKeys.load(Path(settings.require("JWT_DEV_PRIVATE_KEY")))


def cmd_token(args: argparse.Namespace) -> int:
    """A development token, signed with the local stack's key (never valid in production)."""
    company = args.company or settings.require("DEMO_COMPANY_ID")
    try:
        uuid.UUID(company)
    except ValueError:
        print("controlroom: --company must be a UUID", file=sys.stderr)
        return 2
    ttl = timedelta(minutes=args.minutes)
    print(_dev_keys().token(args.user, company, args.role, ttl))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Connect to the relay as a user and print the live feed until Ctrl-C (or --seconds)."""
    import socketio

    token = args.token or _dev_keys().token(
        args.user, args.company or settings.require("DEMO_COMPANY_ID"), args.role
    )
    url = args.url or settings.require("RELAY_URL")
    client = socketio.Client(reconnection=True)
    stop = _stop_on_sigterm()

    def show(name: str, data: object) -> None:
        items = data if isinstance(data, list) else [data]
        for item in items:
            print(f"{name:<14} {json.dumps(item, separators=(',', ':'))}", flush=True)

    client.on("*", show)
    client.on("connect_error", lambda data: print(f"refused: {data}", file=sys.stderr, flush=True))
    auth: dict[str, object] = {"token": token, "snapshot": args.snapshot}
    if args.last_seq is not None:
        auth["last_seq"] = args.last_seq
    try:
        client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError:
        return 1
    stop.wait(args.seconds)
    client.disconnect()
    return 0


def cmd_archive(_args: argparse.Namespace) -> int:
    """Export closed days now (what Cloud Scheduler triggers), with progress and a summary."""
    from controlroom.adapters import s3
    from controlroom.usecases import archive

    cfg = settings.archive()
    print(
        f"archiving closed days to s3://{cfg.bucket} (retention: "
        f"{'off' if cfg.retention_days is None else f'{cfg.retention_days} days'})",
        flush=True,
    )
    with db.connect(cfg.database, autocommit=True) as conn:
        summary = archive.run(
            conn,
            s3.client(cfg.s3_endpoint_url, aws=cfg.aws),
            cfg.bucket,
            retention_days=cfg.retention_days,
            progress=lambda line: print(f"  {line}", flush=True),
        )
    print(
        f"company-days exported: {len(summary.exported)}, rows: {summary.rows}, "
        f"bytes: {summary.bytes}, skipped: {summary.skipped}, failed: {len(summary.failed)}, "
        f"pruned rows: {summary.pruned_rows}"
    )
    return 1 if summary.failed else 0


# --- companies and platform operators (what the platform API does, from a shell) ---------
T = TypeVar("T")


def _platform(work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
    async def run() -> T:
        async with await db.connect_async(autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(run())


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _show(company: dict[str, Any]) -> None:
    after = company.get("delete_after")
    until = f"  purged after {after:%Y-%m-%d %H:%M} UTC" if after else ""
    print(
        f"{company['id']}  {company['status']:<9}  {company['slug']:<24} {company['name']}{until}"
    )


def cmd_company_create(args: argparse.Namespace) -> int:
    """A company and its first owner's invitation (mailed, and printed here)."""
    from controlroom import services
    from controlroom.usecases import companies

    tenancy = settings.tenancy()
    created = _platform(
        lambda conn: companies.create(
            conn,
            _actor(),
            args.name,
            args.owner_email,
            args.slug,
            public_url=tenancy.public_url,
            invitation_ttl_days=tenancy.invitation_ttl_days,
            mailer=services.mailer(tenancy.smtp),
        )
    )
    _show(created.company)
    if created.mailed:
        mailed = "mailed to"
    elif tenancy.smtp is None:
        mailed = "NOT mailed (SMTP_HOST is not set) to"
    else:
        mailed = "NOT mailed (the SMTP server did not take it) to"
    print(
        f"owner invitation {mailed} {args.owner_email}, valid {tenancy.invitation_ttl_days} days:"
    )
    print(created.invitation_url)
    return 0


def cmd_company_list(_args: argparse.Namespace) -> int:
    from controlroom.usecases import companies

    for company in _platform(companies.list_companies):
        _show(company)
    return 0


def cmd_company_status(args: argparse.Namespace) -> int:
    """suspend, resume, delete (after the grace period) or restore one company."""
    from controlroom.usecases import companies

    try:
        company = uuid.UUID(args.company)
    except ValueError:
        print("controlroom: the company must be a UUID (see `controlroom company list`)")
        return 2
    actor = _actor()
    if args.action == "delete":
        grace = settings.tenancy().delete_grace_days
        changed = _platform(lambda conn: companies.schedule_delete(conn, actor, company, grace))
    else:
        change = {
            "suspend": companies.suspend,
            "resume": companies.resume,
            "restore": companies.restore,
        }[args.action]
        changed = _platform(lambda conn: change(conn, actor, company))
    _show(changed)
    return 0


def _purge(cfg: settings.ArchiveSettings, *, quiet: bool = False) -> int:
    from controlroom.adapters import s3
    from controlroom.usecases import companies

    with db.connect(cfg.database, autocommit=True) as conn:
        summary = companies.purge_due(
            conn,
            s3.client(cfg.s3_endpoint_url, aws=cfg.aws),
            cfg.bucket,
            cfg.branding_bucket,
            actor=_actor(),
        )
    if summary.purged or summary.failed or not quiet:
        print(
            f"  companies purged: {len(summary.purged)} ({summary.rows} rows, "
            f"{summary.objects} S3 objects), failed: {len(summary.failed)}",
            flush=True,
        )
    return 1 if summary.failed else 0


def cmd_company_purge(_args: argparse.Namespace) -> int:
    """Remove the companies whose deletion grace period is over (functions/archive does it
    on every scheduled run too)."""
    return _purge(settings.archive())


def cmd_operator_add(args: argparse.Namespace) -> int:
    from controlroom.usecases import companies

    added = _platform(lambda conn: companies.add_operator(conn, _actor(), args.email))
    print(f"{args.email} {'is now' if added else 'was already'} a platform operator")
    return 0


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
    from controlroom.dev import seed

    with db.connect() as conn:
        result = seed.seed_demo(conn)
        sink, keys = (
            settings.read("NOTIFY_SINK_URL", None),
            settings.read("NOTIFICATION_KEYS", None),
        )
        if sink and keys and seed.seed_alert_channel(conn, sink, keys):
            print(f"demo alert channel posts to {sink}")
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


def _analytics_args(args: argparse.Namespace) -> tuple[uuid.UUID, datetime, datetime | None]:
    try:
        company = uuid.UUID(args.company)
    except ValueError:
        raise errors.InvalidError(
            "the company must be a UUID (see `controlroom company list`)"
        ) from None
    try:
        since = datetime.combine(date.fromisoformat(args.since), time(), UTC)
        until = (
            datetime.combine(date.fromisoformat(args.until), time(), UTC) if args.until else None
        )
    except ValueError:
        raise errors.InvalidError("--since and --until are dates: YYYY-MM-DD (UTC days)") from None
    if until is not None and until <= since:
        raise errors.InvalidError("--until must be after --since")
    return company, since, until


def cmd_analytics_rebuild(args: argparse.Namespace) -> int:
    """Recount a company's rollups from its stored events, one UTC day at a time."""
    from controlroom.usecases import analytics

    company, since, until = _analytics_args(args)
    with db.connect(autocommit=True) as conn:
        done = analytics.rebuild(
            conn, company, since, until, progress=lambda line: print(f"  {line}", flush=True)
        )
    skipped = (
        f", {len(done.skipped_days)} pruned day(s) kept as they were" if done.skipped_days else ""
    )
    print(f"rebuilt {done.days} day(s): {done.rows} rollup rows{skipped}")
    return 0


def cmd_analytics_check(args: argparse.Namespace) -> int:
    """Compare a company's rollups with a recount of its events; exit 1 on any difference."""
    from controlroom.usecases import analytics

    company, since, until = _analytics_args(args)
    with db.connect(autocommit=True) as conn:
        found = analytics.check(
            conn, company, since, until, progress=lambda line: print(f"  {line}", flush=True)
        )
    for m in found[:50]:
        print(
            f"  {m.bucket:%Y-%m-%d %H:%M} width {m.width}s creator {m.creator_id} {m.column}: "
            f"stored {m.stored}, recounted {m.recounted}"
        )
    if found:
        more = " (first 50 shown)" if len(found) > 50 else ""
        print(
            f"rollups DIFFER from the events in {len(found)} place(s){more}: "
            "`controlroom analytics rebuild` with the same days repairs them"
        )
        return 1
    print("rollups equal a recount of the events")
    return 0


def _add_analytics_commands(sub: Any) -> None:
    ana = sub.add_parser("analytics", help="analytics rollups: rebuild, check")
    anasub = ana.add_subparsers(dest="analytics_command", required=True)
    for name, func, text in (
        ("rebuild", cmd_analytics_rebuild, "recount rollups from the stored events"),
        ("check", cmd_analytics_check, "compare rollups with a recount (exit 1 on a difference)"),
    ):
        one = anasub.add_parser(name, help=text)
        one.add_argument("--company", required=True, help="company id (UUID)")
        one.add_argument("--since", required=True, help="first UTC day, YYYY-MM-DD")
        one.add_argument("--until", help="day after the last, YYYY-MM-DD (default: through today)")
        one.set_defaults(func=func)


def _add_tenancy_commands(sub: Any) -> None:
    comp = sub.add_parser("company", help="companies: create, list, suspend, delete ...")
    compsub = comp.add_subparsers(dest="company_command", required=True)
    create = compsub.add_parser("create", help="a company and its owner's invitation")
    create.add_argument("--name", required=True)
    create.add_argument("--owner-email", required=True, help="the first owner's email")
    create.add_argument("--slug", help="short name (default: from the name)")
    create.set_defaults(func=cmd_company_create)
    compsub.add_parser("list", help="every company and its status").set_defaults(
        func=cmd_company_list
    )
    for action, text in (
        ("suspend", "refuse sign-in, API and sockets; pause ingestion"),
        ("resume", "undo a suspension"),
        ("delete", "suspend now, purge after COMPANY_DELETE_GRACE_DAYS"),
        ("restore", "undo a deletion within its grace period"),
    ):
        one = compsub.add_parser(action, help=text)
        one.add_argument("company", help="company id (UUID)")
        one.set_defaults(func=cmd_company_status, action=action)
    compsub.add_parser("purge", help="remove companies whose grace period is over").set_defaults(
        func=cmd_company_purge
    )
    oper = sub.add_parser("operator", help="platform operators")
    opersub = oper.add_subparsers(dest="operator_command", required=True)
    add_op = opersub.add_parser("add", help="list an email as a platform operator")
    add_op.add_argument("--email", required=True)
    add_op.set_defaults(func=cmd_operator_add)


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

    trig = sub.add_parser("trigger", help="send one signed EventSub delivery to the webhook")
    trig.add_argument("type", help="subscription type, e.g. stream.online")
    trig.add_argument("--broadcaster", required=True, help="Twitch user id of the creator")
    trig.add_argument("--login", help="the creator's login (for the payload)")
    trig.add_argument("--repeat", type=int, default=0, help="send the same message N more times")
    trig.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="set a field of the event, e.g. --set viewers=5000 or --set is_anonymous=true "
        "(whole numbers and true/false/null as JSON, the rest as text; repeatable)",
    )
    trig.set_defaults(func=cmd_trigger)

    sim = sub.add_parser("simulate", help="send Twitch-like traffic for a while")
    sim.add_argument("--rate", type=float, default=10.0, help="deliveries per second")
    sim.add_argument("--duration", type=float, default=30.0, help="seconds")
    sim.add_argument("--creators", help="ID[:login],... (default: the demo creators)")
    sim.add_argument("--duplicates", type=float, default=0.05, help="share sent twice (0-1)")
    sim.set_defaults(func=cmd_simulate)

    tok = sub.add_parser("token", help="sign a development token with the local stack's key")
    tok.add_argument("--user", required=True, help="the subject (a member's IdP id)")
    tok.add_argument("--company", help="company id (default: DEMO_COMPANY_ID)")
    tok.add_argument("--role", default="viewer", choices=["viewer", "operator", "admin", "owner"])
    tok.add_argument("--minutes", type=int, default=480, help="lifetime")
    tok.set_defaults(func=cmd_token)

    watch = sub.add_parser("watch", help="print a company's live feed as a given user")
    watch.add_argument("--user", default="demo-admin")
    watch.add_argument("--company", help="company id (default: DEMO_COMPANY_ID)")
    watch.add_argument("--role", default="viewer")
    watch.add_argument("--token", help="use this token instead of a development one")
    watch.add_argument("--url", help="relay URL (default: RELAY_URL)")
    watch.add_argument("--last-seq", type=int, help="resume after this seq")
    watch.add_argument("--snapshot", action="store_true", help="print creator states first")
    watch.add_argument("--seconds", type=float, help="stop after this long")
    watch.set_defaults(func=cmd_watch)

    sub.add_parser("archive", help="export closed days to S3 now").set_defaults(func=cmd_archive)

    _add_tenancy_commands(sub)
    _add_analytics_commands(sub)

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
    except errors.SettingsError as exc:
        print(f"controlroom: {exc}", file=sys.stderr)
        return 2
    except errors.ControlRoomError as exc:
        print(f"controlroom: {exc.detail or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
