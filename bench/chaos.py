"""`make chaos`: faults injected under load, each followed by the soak's ledger check.

One stack (the soak's topology: one webhook, one queue, one persist, two relays, dashboard
clients on both) runs a steady load; each scenario injects one fault while deliveries keep
arriving, removes it, and then checks that every delivery Twitch saw accepted during the
scenario is stored once per company, and that every client has every event once. "Recovered"
is the time from the fault's end (the dependency back, the process restarted, the clients cut
off) until all of that holds.

    python -m bench.chaos [--rate 50 --clients 60 --only postgres,redis,...]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from bench import archive as archive_bench
from bench.soak import (
    Agency,
    Dashboards,
    Plan,
    Topology,
    Twitch,
    create_agency,
    drive,
    say,
    soak_stack,
    wait_stored,
)
from controlroom import settings
from controlroom.adapters import s3
from controlroom.dev import dbadmin, twitchsim
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.local import DATABASE
from controlroom.usecases import archive


@dataclass
class Outcome:
    name: str
    accepted: int = 0
    lost: int = 0
    stored_twice: int = 0
    client_missing: int = 0
    client_duplicates: int = 0
    recovered_s: float = float("nan")
    note: str = ""
    problems: list[str] = field(default_factory=list)  # anything else that fails the scenario

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stored_twice
            or self.client_missing
            or self.client_duplicates
            or self.problems
        )


class Chaos:
    def __init__(self, stack: LocalStack, topo: Topology, agency: Agency, *, clients: Dashboards,
                 twitch: Twitch, plan: Plan, workdir: Path) -> None:  # fmt: skip
        self.stack, self.topo, self.agency, self.clients = stack, topo, agency, clients
        self.twitch, self.plan, self.workdir = twitch, plan, workdir
        assert stack.endpoints is not None
        self.admin_url = stack.endpoints.admin_url
        self.duplicates_before = 0
        self.reconnects_before = 0

    def under_load(
        self,
        name: str,
        seconds: float,
        fault: Callable[[], Callable[[], str]],
        at: float = 8.0,
        after: Callable[[], None] | None = None,
    ) -> Outcome:
        """Load for `seconds`; at `at` s the fault starts; it returns `restore`, whose return
        value is a note. Recovery is timed from the end of `restore` until every delivery
        accepted by then is stored and every client has every event; `after` runs once that
        has been checked (a killed relay is started again there)."""
        say(f"\n--- {name} ---")
        before = set(self.twitch.snapshot())
        statuses_before = self.twitch.answers()
        loader = threading.Thread(
            target=drive,
            args=(self.twitch, self.agency),
            kwargs={"rate": self.plan.rate, "seconds": seconds, "seed": zlib.crc32(name.encode())},
        )
        loader.start()
        time.sleep(at)
        restore = fault()
        note = restore()
        restored = time.monotonic()
        say(f"  fault over ({note}); checking ...")
        accepted_now = {m for m, s in self.twitch.snapshot().items() if s.accepted_ms}
        first = wait_stored(self.admin_url, self.agency, self.twitch, 240, messages=accepted_now)
        seen = self.clients.check(first.heads, None, 180, final=False)
        recovered = time.monotonic() - restored
        problems = []
        if first.lost or seen["missing"]:
            problems.append(f"not recovered within {recovered:.0f} s")
            recovered = float("inf")
        if after is not None:
            after()
        loader.join()
        if not self.twitch_drain():
            problems.append("Twitch's retries did not finish within 240 s")
        mine = set(self.twitch.snapshot()) - before
        result = wait_stored(self.admin_url, self.agency, self.twitch, 240, messages=mine)
        seen = self.clients.check(result.heads, None, 180, final=False, reset=True)
        refused = {
            k: v for k, v in (self.twitch.answers() - statuses_before).items() if k >= 300 or k == 0
        }
        outcome = Outcome(
            name,
            accepted=result.accepted,
            lost=result.lost + result.gave_up,
            stored_twice=result.stored_twice,
            client_missing=seen["missing"],
            client_duplicates=seen["duplicates"] - self.duplicates_before,
            recovered_s=recovered,
            note=note,
            problems=problems,
        )
        if result.unresolved:
            problems.append(f"{result.unresolved} deliveries neither accepted nor given up")
        if result.unexpected or result.seq_gaps:
            problems.append(f"{result.unexpected} rows nobody sent, {result.seq_gaps} seq gaps")
        self.duplicates_before = seen["duplicates"]
        if refused:
            answers = ", ".join(f"{n} x {k or 'no answer'}" for k, n in sorted(refused.items()))
            until = self.twitch.last_refused - restored
            outcome.note += (
                f"; Twitch saw {answers} and retried; the last refusal came {until:+.1f} s "
                "from the end of the fault"
            )
        reconnects = seen["reconnects"] - self.reconnects_before
        if reconnects:
            outcome.note += (
                f"; {reconnects} client reconnects, resumed in p50 "
                f"{(seen['recovery_p50_ms'] or 0) / 1000:.1f} s, max "
                f"{(seen['recovery_max_ms'] or 0) / 1000:.1f} s"
            )
        self.reconnects_before = seen["reconnects"]
        say(
            f"  accepted {outcome.accepted}, lost {outcome.lost}, stored twice "
            f"{outcome.stored_twice}, client missing {outcome.client_missing}, duplicated "
            f"{outcome.client_duplicates}, recovered in {outcome.recovered_s:.1f} s"
            + (f"; PROBLEMS: {'; '.join(problems)}" if problems else "")
        )
        return outcome

    def twitch_drain(self, timeout: float = 240) -> bool:
        """Wait until every attempt, resend and retry is done; False if the time ran out."""
        deadline = time.monotonic() + timeout
        while self.twitch.pending() and time.monotonic() < deadline:
            time.sleep(0.5)
        return not self.twitch.pending()

    # --- the faults ------------------------------------------------------------------------
    def outage(
        self,
        stand_in: Any,
        down: float,
        *,
        kill: bool = False,
        after: Callable[[], None] | None = None,
    ) -> Callable[[], Callable[[], str]]:
        """Stop `stand_in` (SIGTERM, or SIGKILL as a crash), start it again `down` s later."""

        def fault() -> Callable[[], str]:
            say(f"  {'SIGKILL' if kill else 'stopping'} {stand_in.name} for {down:.0f} s")
            if kill:
                stand_in.kill()
            else:
                stand_in.stop()

            def restore() -> str:
                time.sleep(down)
                stand_in.start()
                if after is not None:
                    after()
                if kill:
                    return f"{stand_in.name} killed, a new instance after {down:.0f} s"
                return f"{stand_in.name} down {down:.0f} s"

            return restore

        return fault

    def relay_killed(self) -> Callable[[], str]:
        relay = self.topo.relays[0]
        status = self.clients.status()
        say(f"  SIGKILL {relay.name} with {status['live']} clients live")
        relay.kill()

        def restore() -> str:
            # the fault ends as it happens: recovery is the clients moving to the other
            # instance and resuming; the killed one is started again after the check
            return f"{relay.name} killed with clients connected"

        return restore

    # --- the archive ----------------------------------------------------------------------
    def archive_killed(self, rows: int) -> Outcome:
        say("\n--- archive killed mid-upload ---")
        assert self.stack.endpoints is not None
        env = self.stack.endpoints.env()
        admin_db = dbadmin.with_database(self.admin_url, DATABASE)
        company = archive_bench.fill(admin_db, settings.DatabaseSettings.from_env(env), rows)
        day = archive_bench.DAY
        client = s3.client(env["AWS_ENDPOINT_URL_S3"], credentials=("local", "local"))
        bucket = env["ARCHIVE_BUCKET"]
        # the day's parts live under one prefix per format (events/ndjson/…, events/parquet/…)
        prefixes = [archive.prefix(company, day, fmt) for fmt in archive.FORMATS]

        def objects() -> list[dict[str, Any]]:
            return [
                o
                for prefix in prefixes
                for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            ]

        def uploading() -> bool:
            return any(
                client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads")
                for prefix in prefixes
            )

        command = [str(Path(sys.executable).with_name("controlroom")), "archive"]
        proc = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 600
        killed = False
        while time.monotonic() < deadline and proc.poll() is None:
            if objects() or uploading():
                proc.kill()
                killed = True
                break
            time.sleep(0.02)
        proc.wait(30)
        objects_at_kill = len(objects())
        say(f"  killed the archive run with {objects_at_kill} object(s) of 2 uploaded")
        started = time.monotonic()
        rerun = subprocess.run(
            command,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        recovered = time.monotonic() - started
        with psycopg.connect(admin_db) as conn:
            manifest = conn.execute(
                "SELECT object_keys, row_count FROM archive_manifests "
                "WHERE company_id = %s AND day = %s",
                (company, day),
            ).fetchone()
        outcome = Outcome("archive killed mid-upload", accepted=rows, recovered_s=recovered)
        if not killed:
            outcome.problems.append("the first run finished before it could be killed")
        if manifest is None or rerun.returncode != 0:
            outcome.lost = rows
            outcome.note = "the rerun did not record a manifest"
            return outcome
        parts, count = manifest
        local = self.workdir / "archive.ndjson.gz"
        seqs = []
        for part in parts:
            client.download_file(bucket, part["ndjson"], str(local))
            with gzip.open(local, "rt") as lines:
                seqs += [json.loads(line)["seq"] for line in lines]
        outcome.lost = rows - len(set(seqs))
        outcome.stored_twice = len(seqs) - len(set(seqs))
        keys = {p[kind] for p in parts for kind in ("ndjson", "parquet")}
        orphans = [o.get("Key") for o in objects() if o.get("Key") not in keys]
        outcome.note = (
            f"{'killed' if killed else 'NOT killed (finished first)'} with {objects_at_kill} "
            f"of 2 objects uploaded; rerun exported {count} rows, {len(orphans)} orphan objects"
        )
        say(f"  {outcome.note}; recovered in {recovered:.1f} s")
        return outcome

    def late_across_midnight(self, per_wave: int, seconds: float = 45.0) -> Outcome:
        """Follows that happened in the last minutes of yesterday (UTC) arrive in three waves
        under today's load: before the day is archived, after it was archived, and after it
        was archived and pruned. After each wave the archive runs as the scheduler runs it
        (retention 0 for the last two, so the day is pruned); then every such row of every
        watching company must be in S3 exactly once (NDJSON and Parquet alike), the objects
        must be exactly the manifests' parts, and nothing may be left behind or lost."""
        name = "late events across midnight"
        say(f"\n--- {name} ---")
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        rng = random.Random(zlib.crc32(name.encode()))
        before = set(self.twitch.snapshot())
        loader = threading.Thread(
            target=drive,
            args=(self.twitch, self.agency),
            kwargs={"rate": self.plan.rate, "seconds": seconds, "seed": rng.randrange(1 << 30)},
        )
        loader.start()
        late: set[str] = set()
        runs: list[str] = []
        problems: list[str] = []
        started = time.monotonic()
        for wave, retention in (
            ("before yesterday is archived", None),
            ("after it was archived", "0"),
            ("after it was archived and pruned", "0"),
        ):
            ids, line = self._late_wave(
                wave, yesterday, per_wave, rng, retention=retention, problems=problems
            )
            late |= ids
            runs.append(line)
        recovered = time.monotonic() - started
        loader.join()
        if not self.twitch_drain():
            problems.append("Twitch's retries did not finish within 240 s")
        today_ids = set(self.twitch.snapshot()) - before - late
        load = wait_stored(self.admin_url, self.agency, self.twitch, 240, messages=today_ids)
        if load.lost or load.stored_twice:
            problems.append(f"today's load: {load.lost} lost, {load.stored_twice} stored twice")

        # the ledger check: every accepted late delivery, once per watching company, in S3
        ledger = self.twitch.snapshot()
        expected = {
            (str(c), m)
            for m in late
            if ledger[m].accepted_ms is not None
            for c in self.agency.watchers[ledger[m].broadcaster]
        }
        day = self._archived_day(yesterday)
        ndjson = day["ndjson"]
        outcome = Outcome(
            name,
            accepted=sum(1 for m in late if ledger[m].accepted_ms is not None),
            lost=sum(1 for key in expected if ndjson[key] == 0),
            stored_twice=sum(n - 1 for n in ndjson.values() if n > 1),
            recovered_s=recovered,
            problems=problems,
        )
        if day["parquet"] != ndjson:
            problems.append("the Parquet objects hold other rows than the NDJSON ones")
        # a delivery Twitch saw refused may still have been queued (at least once): allowed
        sent = {(str(c), m) for m in late for c in self.agency.watchers[ledger[m].broadcaster]}
        if set(ndjson) - sent:
            problems.append(f"{len(set(ndjson) - sent)} archived rows nobody sent late")
        if day["orphans"]:
            problems.append(f"{day['orphans']} objects no manifest lists")
        if day["hot"]:
            problems.append(f"{day['hot']} rows of yesterday in PostgreSQL after the last prune")
        outcome.note = (
            f"{len(expected)} rows of yesterday (3 waves of {per_wave} deliveries) in S3: "
            f"{len(set(ndjson) & expected)} once, {outcome.stored_twice} twice; parts per "
            f"company-day {dict(sorted(day['parts'].items()))}; {day['hot']} left in "
            f"PostgreSQL, {day['orphans']} orphan objects; today's load {load.accepted} "
            f"accepted, {load.lost} lost; runs: " + " | ".join(runs)
        )
        say(f"  {outcome.note}")
        return outcome

    def _late_wave(
        self,
        wave: str,
        yesterday: date,
        count: int,
        rng: random.Random,
        *,
        retention: str | None,
        problems: list[str],
    ) -> tuple[set[str], str]:
        """`count` follows of yesterday's last ten minutes, stored; then an archive run."""
        assert self.stack.endpoints is not None
        env = self.stack.endpoints.env()
        midnight = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC)
        midnight += timedelta(days=1)
        known = set(self.twitch.snapshot())
        for _ in range(count):
            creator = rng.choice(self.agency.broadcasters)
            at = midnight - timedelta(seconds=rng.uniform(1, 600))
            body = twitchsim.notification_body("channel.follow", creator, rng, now=at)
            self.twitch.schedule(time.monotonic(), body, creator.user_id)
        stamp = f'"followed_at":"{yesterday.isoformat()}'
        ids = {
            m
            for m, sent in self.twitch.snapshot().items()
            if m not in known and stamp in sent.body.decode()
        }
        if not self._resolved(ids, 240):
            problems.append(f"deliveries {wave} not answered within 240 s")
        stored = wait_stored(self.admin_url, self.agency, self.twitch, 240, messages=ids)
        say(f"  {len(ids)} deliveries of yesterday {wave}: {stored.accepted} accepted, "
            f"{stored.lost} not stored")  # fmt: skip
        extra = {} if retention is None else {"ARCHIVE_RETENTION_DAYS": retention}
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("controlroom")), "archive"],
            env={**os.environ, **env, **extra},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        mine = [
            line.strip()
            for line in proc.stdout.splitlines()
            if str(yesterday) in line or "pruned" in line or "exported:" in line
        ]
        for line in mine:
            say(f"    {line}")
        if proc.returncode != 0:
            problems.append(f"the archive run {wave} failed ({proc.returncode})")
        return ids, f"{wave}: " + (mine[-1] if mine else "no output")

    def _archived_day(self, day: date) -> dict[str, Any]:
        """The agency's objects of `day`: (company, message id) multisets per format, parts
        per manifest, objects no manifest lists, and the day's rows left in PostgreSQL."""
        assert self.stack.endpoints is not None
        env = self.stack.endpoints.env()
        client = s3.client(env["AWS_ENDPOINT_URL_S3"], credentials=("local", "local"))
        bucket = env["ARCHIVE_BUCKET"]
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        ndjson: Counter[tuple[str, str]] = Counter()
        parquet: Counter[tuple[str, str]] = Counter()
        parts: Counter[int] = Counter()
        orphans = 0
        with psycopg.connect(dbadmin.with_database(self.admin_url, DATABASE)) as conn:
            manifests: dict[uuid.UUID, list[dict[str, Any]]] = dict(
                conn.execute(
                    "SELECT company_id, object_keys FROM archive_manifests WHERE day = %s",
                    (day,),
                ).fetchall()
            )
            left = conn.execute(
                "SELECT count(*) FROM events WHERE company_id = ANY(%s) "
                "AND occurred_at >= %s AND occurred_at < %s",
                (self.agency.companies, start, start + timedelta(days=1)),
            ).fetchone()
        for company in self.agency.companies:
            recorded = manifests.get(company, [])
            parts[len(recorded)] += 1
            keys = {p[kind] for p in recorded for kind in ("ndjson", "parquet")}
            listing = [
                obj
                for fmt in archive.FORMATS
                for obj in client.list_objects_v2(
                    Bucket=bucket, Prefix=archive.prefix(company, day, fmt)
                ).get("Contents", [])
            ]
            for obj in listing:
                key = obj["Key"]
                orphans += key not in keys
                data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                if key.endswith(".ndjson.gz"):
                    ndjson.update(
                        (str(company), json.loads(line)["twitch_message_id"])
                        for line in gzip.decompress(data).splitlines()
                    )
                else:
                    table = pq.read_table(pa.BufferReader(data))
                    parquet.update(
                        (str(company), m) for m in table.column("twitch_message_id").to_pylist()
                    )
        return {
            "ndjson": ndjson,
            "parquet": parquet,
            "parts": parts,
            "orphans": orphans,
            "hot": left[0] if left else 0,
        }

    def _resolved(self, ids: set[str], timeout: float) -> bool:
        """Wait until Twitch saw each of `ids` accepted or gave it up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ledger = self.twitch.snapshot()
            if all(ledger[m].accepted_ms is not None or ledger[m].gave_up for m in ids):
                return True
            time.sleep(0.5)
        return False


# "late" prunes yesterday's rows (seq gaps from then on), so it runs last
SCENARIOS = ("postgres", "redis", "firestore", "tasks", "persist", "relay", "archive", "late")


def run(
    plan: Plan, only: list[str], outage: float, archive_rows: int, late_per_wave: int = 100
) -> int:
    say(
        f"chaos: load {plan.rate:.0f} deliveries/s, {plan.clients} dashboard clients on "
        f"{plan.relays} relays, webhook and persist {plan.workers} workers x {plan.threads} "
        f"threads; outages of {outage:.0f} s"
    )
    outcomes: list[Outcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="controlroom-chaos-") as tmp,
        soak_stack(Path(tmp), plan) as (stack, topo),
    ):
        assert stack.endpoints is not None
        agency = create_agency(stack, plan, "c")
        clients = Dashboards(Path(tmp), topo.relays, agency, plan.clients)
        twitch = Twitch(
            [w.url for w in topo.webhooks],
            stack.endpoints.eventsub_secret,
            plan.senders,
            plan.duplicates,
            plan.seed,
        )
        try:
            clients.wait_ready()
            chaos = Chaos(
                stack, topo, agency, clients=clients, twitch=twitch, plan=plan, workdir=Path(tmp)
            )
            window = outage + 25
            faults: dict[str, Callable[[], Outcome]] = {
                "postgres": lambda: chaos.under_load(
                    "PostgreSQL stopped", window, chaos.outage(stack.postgres, outage)
                ),
                "redis": lambda: chaos.under_load(
                    "Redis stopped", window, chaos.outage(stack.valkey, outage)
                ),
                "firestore": lambda: chaos.under_load(
                    "Firestore emulator stopped",
                    window,
                    chaos.outage(stack.firestore, outage),
                ),
                "tasks": lambda: chaos.under_load(
                    "Cloud Tasks stand-in restarted",
                    window,
                    chaos.outage(stack.tasks, 2.0),  # it keeps its queues and tasks
                ),
                "persist": lambda: chaos.under_load(
                    "persist worker SIGKILL", window, chaos.outage(topo.persists[0], 3.0, kill=True)
                ),
                "relay": lambda: chaos.under_load(
                    "relay killed with clients connected",
                    window,
                    chaos.relay_killed,
                    after=topo.relays[0].start,
                ),
                "archive": lambda: chaos.archive_killed(archive_rows),
                "late": lambda: chaos.late_across_midnight(late_per_wave),
            }
            for name in only:
                outcomes.append(faults[name]())
        finally:
            twitch.close()
            clients.close()
    say("\n=== chaos summary ===")
    say(f"{'scenario':<38}{'accepted':>9}{'lost':>6}{'twice':>7}{'c.miss':>8}{'c.dup':>7}"
        f"{'recovered':>11}")  # fmt: skip
    for o in outcomes:
        say(
            f"{o.name:<38}{o.accepted:>9}{o.lost:>6}{o.stored_twice:>7}{o.client_missing:>8}"
            f"{o.client_duplicates:>7}{o.recovered_s:>10.1f}s"
        )
        say(f"    {o.note}")
        if o.problems:
            say(f"    PROBLEMS: {'; '.join(o.problems)}")
    ok = all(o.ok for o in outcomes)
    say("RESULT: " + ("PASS, nothing lost or doubled in any scenario" if ok else "FAIL"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--outage", type=float, default=20.0, help="seconds each outage lasts")
    parser.add_argument("--archive-rows", type=int, default=300_000)
    parser.add_argument(
        "--late-per-wave", type=int, default=100, help="late deliveries per wave (scenario late)"
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    plan = Plan(rate=args.rate, clients=args.clients, burst=0, seconds=0)
    return run(plan, only, args.outage, args.archive_rows, args.late_per_wave)


if __name__ == "__main__":
    sys.exit(main())
