"""The security review, written as tests against the running services: forged and replayed
tokens, cross-tenant probes through every channel, injection through every filter,
oversized and deeply nested bodies, request smuggling, and clients that stop reading."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets
import websockets.sync.client
from google.cloud import firestore
from psycopg.rows import dict_row

from controlroom import settings
from controlroom.adapters import db, eventstore, s3
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core import eventsub
from controlroom.core.events import compact
from controlroom.dev import dbadmin, devkeys, twitchsim
from controlroom.dev.stack import LocalStack, local
from controlroom.dev.stack.functions import RelayServer
from controlroom.usecases import archive
from tests.integration.conftest import services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.raw_socketio import StalledClient, exchange, statuses
from tests.integration.relay_client import FeedClient
from tests.integration.tenant_data import sample_event
from tests.integration.test_api import Agency, Api, make_agency

SEND_QUEUE_LIMIT = 20  # the tight relay's RELAY_SEND_QUEUE_LIMIT


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "security") as running:
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


@pytest.fixture(scope="module")
def agencies(cfg: settings.DatabaseSettings) -> tuple[Agency, Agency]:
    return make_agency(cfg, "sec_alpha", 3), make_agency(cfg, "sec_bravo", 30)


@pytest.fixture(scope="module")
def superuser(stack: LocalStack) -> Iterator[psycopg.Connection[Any]]:
    assert stack.endpoints is not None
    url = dbadmin.with_database(stack.endpoints.admin_url, local.DATABASE)
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        yield conn


@pytest.fixture
def clients() -> Iterator[list[FeedClient]]:
    made: list[FeedClient] = []
    yield made
    for c in made:
        c.close()


def feed_client(clients: list[FeedClient], url: str) -> FeedClient:
    c = FeedClient(url)
    clients.append(c)
    return c


def relay_url(stack: LocalStack) -> str:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    return stack.endpoints.relay_url


def relay_log(relay: RelayServer) -> str:
    return (relay.log_dir / f"{relay.name}.log").read_text()


def token_for(stack: LocalStack, agency: Agency, role: str, **kw: Any) -> str:
    return stack.keys.token(f"{agency.name}-{role}", agency.company, role, **kw)


def counts(superuser: psycopg.Connection[Any], company: uuid.UUID) -> dict[str, int]:
    """Rows per tenant table for one company, read past RLS: the 'nothing changed' oracle."""
    found = {}
    for table, where in (
        ("companies", "id = %s"),
        ("companies", "id = %s AND status = 'active'"),
        ("users", "company_id = %s"),
        ("members", "company_id = %s"),
        ("creators", "company_id = %s"),
        ("events", "company_id = %s"),
        ("event_acks", "company_id = %s"),
        ("audit_logs", "company_id = %s"),
        ("invitations", "company_id = %s"),
        ("invitations", "company_id = %s AND revoked_at IS NULL AND accepted_at IS NULL"),
        ("incidents", "company_id = %s"),
        ("incidents", "company_id = %s AND status = 'open' AND assignee_user_id IS NULL"),
        ("incident_notes", "company_id = %s"),
        ("incident_events", "company_id = %s"),
        ("incident_rules", "company_id = %s"),
        ("incident_rules", "company_id = %s AND params = '{}'::jsonb"),
        ("notification_channels", "company_id = %s"),
        ("notification_channels", "company_id = %s AND enabled AND name = 'bravo alerts'"),
        ("notification_deliveries", "company_id = %s"),
        # (the pulse adds samples every minute: B's own marker sample must stay)
        ("viewer_samples", "company_id = %s AND viewers = 4242"),
    ):
        row = superuser.execute(
            f"SELECT count(*) AS n FROM {table} WHERE {where}", (company,)
        ).fetchone()
        assert row is not None
        found[f"{table} where {where}"] = int(row["n"])
    return found


# --- 1. tokens ------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hmac_token(secret: bytes, claims: dict[str, Any], header: dict[str, Any]) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def _unsigned(claims: dict[str, Any], alg: str) -> str:
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def token_attacks(
    stack: LocalStack, agency: Agency, role: str, tmp_path: Path
) -> dict[str, tuple[str, str | None]]:
    """name -> (token, the reason the server gives, when it is fixed)."""
    now = int(time.time())
    claims = {
        "sub": f"{agency.name}-{role}",
        "company_id": str(agency.company),
        "role": role,
        "iss": devkeys.ISSUER,
        "aud": devkeys.AUDIENCE,
        "nbf": now - 5,
        "exp": now + 600,
    }
    keys, stranger = stack.keys, devkeys.DevKeys.create(tmp_path / "stranger-idp")
    jwk_secret = json.dumps(keys.public_jwk()).encode()
    real_kid = {"kid": keys.kid}
    return {
        "alg none": (_unsigned(claims, "none"), "algorithm not allowed"),
        "alg NONE": (_unsigned(claims, "NONE"), "algorithm not allowed"),
        "HS256 keyed with the public PEM": (
            _hmac_token(keys.public_pem().encode(), claims, {"alg": "HS256", **real_kid}),
            "algorithm not allowed",
        ),
        "HS256 keyed with the public JWK": (
            _hmac_token(jwk_secret, claims, {"alg": "HS256", **real_kid}),
            "algorithm not allowed",
        ),
        "RS512 with the real key": (
            jwt.encode(claims, keys.private_pem, algorithm="RS512", headers=real_kid),
            "algorithm not allowed",
        ),
        "expired": (token_for(stack, agency, role, ttl=timedelta(minutes=-5)), "token expired"),
        "not yet valid": (
            jwt.encode(
                {**claims, "nbf": now + 3600, "exp": now + 7200},
                keys.private_pem,
                algorithm="RS256",
                headers=real_kid,
            ),
            "token not yet valid",
        ),
        "wrong audience": (
            token_for(stack, agency, role, audience="another-service"),
            "token not for this service",
        ),
        "wrong issuer": (
            token_for(stack, agency, role, issuer="https://evil.example/idp"),
            "token not for this service",
        ),
        "unknown kid": (stranger.token(claims["sub"], agency.company, role), "unknown signing key"),
        "the real kid on another key": (
            jwt.encode(claims, stranger.private_pem, algorithm="RS256", headers=real_kid),
            "invalid token",
        ),
        "no exp": (
            jwt.encode(
                {k: v for k, v in claims.items() if k != "exp"},
                keys.private_pem,
                algorithm="RS256",
                headers=real_kid,
            ),
            "invalid token",
        ),
        "payload swapped to another company": (
            _swap_payload(
                token_for(stack, agency, role), {**claims, "company_id": str(uuid.uuid4())}
            ),
            "invalid token",
        ),
        "oversized": ("a" * 9000, "missing token"),
        "garbage": ("not.a.token", "malformed token"),
    }


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_rest_refuses_forged_expired_and_misaddressed_tokens(
    stack: LocalStack, agencies: tuple[Agency, Agency], tmp_path: Path
) -> None:
    a, _ = agencies
    api = Api(stack, a, "viewer")
    assert api("GET", "/api/me")[0] == 200  # the same claims, signed properly, are fine
    for name, (bad, reason) in token_attacks(stack, a, "viewer", tmp_path).items():
        status, answer = api("GET", "/api/creators", headers={"Authorization": f"Bearer {bad}"})
        assert (status, answer["error"], answer["detail"]) == (401, "unauthorized", reason), name
    for header in ("Basic " + _b64(b"user:pass"), "Bearer", "Bearer  ", api.token):
        status, answer = api("GET", "/api/creators", headers={"Authorization": header})
        assert (status, answer["error"]) == (401, "unauthorized"), header


def test_relay_refuses_forged_expired_and_misaddressed_tokens(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    clients: list[FeedClient],
    tmp_path: Path,
) -> None:
    a, _ = agencies
    url = relay_url(stack)
    for name, (bad, reason) in token_attacks(stack, a, "viewer", tmp_path).items():
        c = feed_client(clients, url)
        assert not c.connect({"token": bad}), name
        assert c.refused == reason, name
    for auth in ({"token": ["a", "list"]}, {"jwt": token_for(stack, a, "viewer")}, {}):
        c = feed_client(clients, url)
        assert not c.connect(auth)
        assert c.refused == "missing token"
    good = feed_client(clients, url)
    assert good.connect({"token": token_for(stack, a, "viewer")})


def test_a_removed_member_is_cut_off_everywhere(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    cfg: settings.DatabaseSettings,
    clients: list[FeedClient],
) -> None:
    a, _ = agencies
    owner = Api(stack, a, "owner")
    status, member = owner("POST", "/api/members", {"subject": "sec-leaver", "role": "operator"})
    assert status == 201
    leaver = stack.keys.token("sec-leaver", a.company, "operator")  # valid for hours
    as_leaver = Api(stack, a, "operator")
    as_leaver.token = leaver
    assert as_leaver("GET", "/api/me")[0] == 200
    url = relay_url(stack)
    connected = feed_client(clients, url)
    assert connected.connect({"token": leaver})
    connected.wait_live()
    colleague = feed_client(clients, url)
    assert colleague.connect({"token": token_for(stack, a, "viewer")})
    colleague.wait_live()

    assert owner("DELETE", f"/api/members/{member['user_id']}")[0] == 204

    for method, path, body in (
        ("GET", "/api/me", None),
        ("GET", "/api/events", None),
        ("POST", "/api/events/1/ack", {"note": "still here?"}),
    ):
        status, answer = as_leaver(method, path, body)
        assert (status, answer["detail"]) == (401, "not a member of this company"), path
    again = feed_client(clients, url)
    assert not again.connect({"token": leaver})
    assert again.refused == "not a member of this company"
    # the socket opened before the removal is closed by the relay, not left streaming
    assert wait_for(lambda: not connected.client.connected, timeout=20)
    assert ("session_expired", {"reason": "not a member of this company"}) in connected.control
    assert colleague.client.connected
    assert relay_log(stack.relays[0]).count('"member removed; socket closed"') >= 1


# --- 2. cross-tenant probes -----------------------------------------------------------------


def _probes(
    b: Agency,
    b_only_seq: int,
    b_key: str,
    b_invitation: uuid.UUID,
    b_incident: uuid.UUID,
    b_channel: uuid.UUID,
) -> dict[tuple[str, str], list[tuple[str, Any]]]:
    """For every route of the API: requests that name company B's things (ids, seqs, keys).

    The platform routes answer only platform-operator tokens: a company's owner naming B
    there must be refused before anything is read, with nothing of B in the answer."""
    creator, user = b.creators[0], b.users["viewer"]
    company = f"/api/platform/companies/{b.company}"
    spellings = [str(creator), str(creator).upper(), f"urn:uuid:{creator}", creator.hex]
    incident = f"/api/incidents/{b_incident}"
    channel = f"/api/notification-channels/{b_channel}"
    rule = {"enabled": True, "severity": "critical", "params": {"min_viewers": 1}}
    return {
        ("get", "/api/me"): [("/api/me", None)],
        ("get", "/api/company"): [("/api/company", None)],
        ("patch", "/api/company"): [("/api/company", {"name": "sec_alpha"})],
        ("post", "/api/company/logo-uploads"): [
            ("/api/company/logo-uploads", {"content_type": "image/png", "content_length": 10})
        ],
        ("post", "/api/company/logo-uploads/confirm"): [
            ("/api/company/logo-uploads/confirm", {"key": b_key})
        ],
        ("get", "/api/creators"): [("/api/creators", None)],
        ("post", "/api/creators"): [
            (
                "/api/creators",
                {"login": "sec_bravo_c0", "twitch_user_id": "9090909", "display_name": "x"},
            )
        ],
        ("get", "/api/subscriptions/unhealthy"): [("/api/subscriptions/unhealthy", None)],
        ("get", "/api/creators/{creator_id}"): [(f"/api/creators/{s}", None) for s in spellings],
        ("patch", "/api/creators/{creator_id}"): [
            (f"/api/creators/{s}", {"notes": "taken over"}) for s in spellings
        ],
        ("delete", "/api/creators/{creator_id}"): [(f"/api/creators/{s}", None) for s in spellings],
        ("post", "/api/creators/{creator_id}/connect-link"): [
            (f"/api/creators/{s}/connect-link", None) for s in spellings
        ],
        ("get", "/api/members"): [("/api/members", None)],
        ("post", "/api/members"): [
            ("/api/members", {"subject": "sec_bravo-owner", "role": "owner"})
        ],
        ("patch", "/api/members/{user_id}"): [(f"/api/members/{user}", {"role": "owner"})],
        ("delete", "/api/members/{user_id}"): [(f"/api/members/{user}", None)],
        ("get", "/api/events"): [
            (f"/api/events?creator_id={creator}", None),
            (f"/api/events?after_seq={b_only_seq - 1}", None),
            (f"/api/events?before_seq={b_only_seq + 1}&limit=200", None),
        ],
        ("post", "/api/events/{seq}/ack"): [(f"/api/events/{b_only_seq}/ack", {"note": "mine"})],
        ("get", "/api/audit"): [("/api/audit?limit=200", None)],
        ("get", "/api/audit/verify"): [("/api/audit/verify", None)],
        ("get", "/api/invitations"): [("/api/invitations", None)],
        ("post", "/api/invitations"): [
            ("/api/invitations", {"email": "sec_bravo-owner@example.test", "role": "owner"})
        ],
        ("delete", "/api/invitations/{invitation_id}"): [
            (f"/api/invitations/{b_invitation}", None)
        ],
        ("get", "/api/platform/companies"): [("/api/platform/companies", None)],
        ("post", "/api/platform/companies"): [
            ("/api/platform/companies", {"name": "sec_intruder", "owner_email": "x@example.test"})
        ],
        ("get", "/api/platform/companies/{company_id}"): [(company, None)],
        ("post", "/api/platform/companies/{company_id}/suspend"): [(f"{company}/suspend", None)],
        ("post", "/api/platform/companies/{company_id}/resume"): [(f"{company}/resume", None)],
        ("post", "/api/platform/companies/{company_id}/restore"): [(f"{company}/restore", None)],
        ("delete", "/api/platform/companies/{company_id}"): [(company, None)],
        ("get", "/api/platform/audit"): [("/api/platform/audit?limit=200", None)],
        ("get", "/api/incidents"): [
            ("/api/incidents?limit=200", None),
            (f"/api/incidents?creator_id={creator}", None),
            ("/api/incidents?before=2&status=open", None),
        ],
        ("get", "/api/incidents/{incident_id}"): [(incident, None)],
        ("post", "/api/incidents/{incident_id}/acknowledge"): [(f"{incident}/acknowledge", None)],
        ("post", "/api/incidents/{incident_id}/resolve"): [
            (f"{incident}/resolve", {"resolution": "mine"})
        ],
        ("put", "/api/incidents/{incident_id}/assignee"): [
            (f"{incident}/assignee", {"user_id": str(user)}),
            (f"{incident}/assignee", {"user_id": None}),
        ],
        ("post", "/api/incidents/{incident_id}/notes"): [(f"{incident}/notes", {"body": "mine"})],
        ("get", "/api/incident-rules"): [("/api/incident-rules", None)],
        # rules are named, not numbered: A's admin changes A's rule, never B's override
        ("put", "/api/incident-rules/{rule}"): [("/api/incident-rules/raid_incoming", rule)],
        ("get", "/api/notification-channels"): [("/api/notification-channels", None)],
        ("post", "/api/notification-channels"): [
            (
                "/api/notification-channels",
                {
                    "kind": "slack",
                    "name": "alpha alerts",
                    "url": "https://hooks.slack.com/services/T1/B1/alpha",
                    "enabled": False,  # never posts
                },
            )
        ],
        ("patch", "/api/notification-channels/{channel_id}"): [
            (channel, {"name": "taken", "enabled": False, "url": "https://evil.example/x"})
        ],
        ("delete", "/api/notification-channels/{channel_id}"): [(channel, None)],
        ("post", "/api/notification-channels/{channel_id}/test"): [(f"{channel}/test", None)],
        ("get", "/api/notification-channels/{channel_id}/deliveries"): [
            (f"{channel}/deliveries?limit=200", None)
        ],
        ("get", "/api/viewers"): [("/api/viewers?minutes=1440", None)],
        # analytics: B's creator is not found; A's own figures never hold B's events
        ("get", "/api/analytics/metrics"): [("/api/analytics/metrics", None)],
        ("get", "/api/analytics/summary"): [
            ("/api/analytics/summary?period=30d", None),
            (f"/api/analytics/summary?period=24h&creator_id={creator}", None),
        ],
        ("get", "/api/analytics/series"): [
            ("/api/analytics/series?period=7d&metric=follows&metric=live_minutes", None),
            (f"/api/analytics/series?period=24h&metric=follows&creator_id={creator}", None),
        ],
        ("get", "/api/analytics/leaderboard"): [
            ("/api/analytics/leaderboard?period=30d&metric=follows&limit=200", None)
        ],
        ("get", "/api/analytics/summary.csv"): [
            (f"/api/analytics/summary.csv?period=24h&creator_id={creator}", None)
        ],
        ("get", "/api/analytics/series.csv"): [
            (f"/api/analytics/series.csv?period=24h&metric=bits&creator_id={creator}", None)
        ],
        ("get", "/api/analytics/leaderboard.csv"): [
            ("/api/analytics/leaderboard.csv?period=30d&metric=chat_messages", None)
        ],
    }


def _incident_rows(superuser: psycopg.Connection[Any], b: Agency) -> tuple[uuid.UUID, uuid.UUID]:
    """B's incident (with a note, a linked event and a delivery), channel, rule override and
    viewer samples, written past RLS: what A's probes must neither see nor change."""
    company, creator = b.company, b.creators[0]
    number = superuser.execute(
        "UPDATE event_sequences SET last_incident = last_incident + 1 WHERE company_id = %s "
        "RETURNING last_incident",
        (company,),
    ).fetchone()["last_incident"]
    incident = superuser.execute(
        "INSERT INTO incidents (company_id, number, creator_id, rule, severity, title, "
        "dedup_key, opened_at) VALUES (%s, %s, %s, 'raid_incoming', 'warning', "
        "'sec_bravo raid', 'sec:raid', now()) RETURNING id",
        (company, number, creator),
    ).fetchone()["id"]
    superuser.execute(
        "INSERT INTO incident_notes (company_id, incident_id, author_subject, body) "
        "VALUES (%s, %s, 'sec_bravo-owner', 'sec_bravo note')",
        (company, incident),
    )
    superuser.execute(
        "INSERT INTO incident_events (company_id, incident_id, seq) VALUES (%s, %s, 30)",
        (company, incident),
    )
    channel = superuser.execute(
        "INSERT INTO notification_channels (company_id, kind, name, sealed_url, wrapped_key, "
        "key_id, url_hint) VALUES (%s, 'discord', 'bravo alerts', '\\x00', '\\x00', 'k', "
        "'https://discord.example/…cret') RETURNING id",
        (company,),
    ).fetchone()["id"]
    superuser.execute(
        "INSERT INTO notification_deliveries (company_id, channel_id, incident_id, transition) "
        "VALUES (%s, %s, %s, 'opened')",
        (company, channel, incident),
    )
    superuser.execute(
        "INSERT INTO incident_rules (company_id, rule, enabled, severity, params, updated_by) "
        "VALUES (%s, 'raid_incoming', true, 'warning', '{}', 'sec_bravo-owner')",
        (company,),
    )
    superuser.execute(
        "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers) "
        "VALUES (%s, %s, now(), true, 4242)",
        (company, creator),
    )
    return incident, channel


def test_every_api_route_with_another_company_ids(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    superuser: psycopg.Connection[Any],
) -> None:
    a, b = agencies
    owner = Api(stack, a, "owner")
    b_key = f"tenants/{b.company}/branding/logo-{uuid.uuid4().hex}.png"
    b_invitation = superuser.execute(
        "INSERT INTO invitations (company_id, email, role, token_hash, invited_by_subject,"
        " expires_at) VALUES (%s, 'invitee@bravo.test', 'admin', %s, 'sec_bravo-owner',"
        " now() + interval '7 days') RETURNING id",
        (b.company, os.urandom(32)),
    ).fetchone()["id"]
    b_incident, b_channel = _incident_rows(superuser, b)
    probes = _probes(b, 30, b_key, b_invitation, b_incident, b_channel)
    status, spec = owner("GET", "/api/openapi.json")
    assert status == 200
    routes = {(m, p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/")}
    assert routes == set(probes), "a route without a cross-tenant probe (or a stale one)"
    b_before = counts(superuser, b.company)
    b_audit_before = superuser.execute(
        "SELECT max(id) AS m FROM audit_logs WHERE company_id = %s", (b.company,)
    ).fetchone()
    platform_before = superuser.execute(
        "SELECT (SELECT count(*) FROM companies) AS companies,"
        " (SELECT count(*) FROM platform_audit) AS audit"
    ).fetchone()
    seen: list[Any] = []
    for (method, _template), requests in probes.items():
        for path, body in requests:
            status, answer = owner(method.upper(), path, body)
            assert status < 500, (method, path, status)
            if _template.startswith("/api/platform/"):
                # a company token is not a platform token: refused before anything is read
                assert status == 401, (method, path, status, answer)
            elif _template == "/api/incident-rules/{rule}":
                assert status == 200, (method, path, status, answer)  # A's own rule
            elif "{" in _template or "confirm" in path:
                assert status in (403, 404, 422), (method, path, status, answer)
            seen.append(answer)
    dump = json.dumps(seen)
    for secret in (
        str(b.company),
        *(str(c) for c in b.creators),
        *(str(u) for u in b.users.values()),
        str(b_incident),
        str(b_channel),
    ):
        assert secret not in dump
        assert secret.upper() not in dump
    assert "bravo alerts" not in dump
    assert "sec_bravo" not in dump.replace("sec_bravo_c0", "").replace("sec_bravo-owner", "")
    assert counts(superuser, b.company) == b_before
    assert (
        superuser.execute(
            "SELECT max(id) AS m FROM audit_logs WHERE company_id = %s", (b.company,)
        ).fetchone()
        == b_audit_before
    )
    assert (
        superuser.execute(
            "SELECT (SELECT count(*) FROM companies) AS companies,"
            " (SELECT count(*) FROM platform_audit) AS audit"
        ).fetchone()
        == platform_before
    ), "a company's token changed something at the platform level"


def publish_stored(
    cfg: settings.DatabaseSettings,
    publisher: SocketIOPublisher,
    company: uuid.UUID,
    creator: uuid.UUID | None,
    count: int,
    **summary: Any,
) -> list[int]:
    """Store events as persist does, then publish each compact row to the company's room."""
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        stored = eventstore.append(
            conn,
            company,
            [
                sample_event(f"sec-{uuid.uuid4()}", "1", creator, summary=dict(summary))
                for _ in range(count)
            ],
        )
        rows = conn.execute(
            "SELECT * FROM events WHERE seq = ANY(%s) ORDER BY seq", ([s.seq for s in stored],)
        ).fetchall()
    for row in rows:
        publisher.publish(company, "event", compact(row))
    return [r["seq"] for r in rows]


def head_of(cfg: settings.DatabaseSettings, company: uuid.UUID) -> tuple[str, int]:
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        conn.execute(
            "INSERT INTO event_sequences (company_id) VALUES (%s) ON CONFLICT DO NOTHING",
            (company,),
        )
        row = conn.execute("SELECT epoch, last_seq FROM event_sequences").fetchone()
    return str(row["epoch"]), int(row["last_seq"])


def test_socket_rooms_and_resume_never_reach_another_company(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    agencies: tuple[Agency, Agency],
    clients: list[FeedClient],
) -> None:
    a, b = agencies
    url = relay_url(stack)
    publisher = SocketIOPublisher(env["REDIS_URL"])
    b_epoch, b_head = head_of(cfg, b.company)
    a_epoch, a_head = head_of(cfg, a.company)
    assert b_head > a_head + 5 and a_epoch != b_epoch
    intruder = feed_client(clients, url)
    assert intruder.connect({"token": token_for(stack, a, "viewer")})
    intruder.wait_live()
    victim = feed_client(clients, url)
    assert victim.connect({"token": token_for(stack, b, "viewer")})
    victim.wait_live()
    creator = b.creators[0]
    for spelling in (str(creator), str(creator).upper(), f"urn:uuid:{creator}", f"{{{creator}}}"):
        assert intruder.call("subscribe", {"creator_id": spelling}) == {
            "ok": False,
            "error": "no such creator",
        }, spelling
    for name, data in (
        ("join", {"room": f"company:{b.company}"}),
        ("enter_room", f"company:{b.company}:creator:{creator}"),
        ("unsubscribe", {"creator_id": str(creator)}),
    ):
        intruder.client.emit(name, data)

    # resume inside B's range, with B's epoch, or both: a resync or A's own events, never B's
    def seen(name: str) -> int:
        return sum(1 for n, _ in intruder.control if n == name)

    for resume, resyncs in (
        ({"last_seq": 0, "epoch": b_epoch}, 1),
        ({"last_seq": b_head - 3}, 2),
        ({"last_seq": a_head - 1, "epoch": b_epoch}, 3),
        ({"last_seq": 0}, 3),
    ):
        lives = seen("live")
        assert intruder.call("resume", resume) == {"ok": True}
        assert wait_for(lambda lives=lives: seen("live") > lives)  # type: ignore[misc]
        assert seen("resync") == resyncs, resume
    assert intruder.seqs() == list(range(1, a_head + 1))
    # B's live events, company-wide and for the creator A tried to subscribe to
    b_seqs = publish_stored(cfg, publisher, b.company, creator, 3)
    assert wait_for(lambda: victim.seqs()[-3:] == b_seqs)
    late = feed_client(clients, url)
    assert late.connect({"token": token_for(stack, a, "viewer"), "last_seq": 0, "epoch": a_epoch})
    late.wait_live()
    a_seqs = publish_stored(cfg, publisher, a.company, a.creators[0], 1)
    assert wait_for(lambda: intruder.seqs()[-1:] == a_seqs and late.seqs()[-1:] == a_seqs)
    assert late.seqs() == list(range(1, a_seqs[-1] + 1))
    b_things = {str(c) for c in b.creators}
    for c in (intruder, late):
        assert all(e["seq"] <= a_seqs[-1] for e in c.events)
        assert not {e["creator_id"] for e in c.events} & b_things
        assert set(c.seqs()) <= set(range(1, a_seqs[-1] + 1))


def test_archive_exports_hold_exactly_one_company_each(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    assert stack.endpoints is not None
    client = s3.client(stack.endpoints.s3_endpoint_url, credentials=("local", "local"))
    bucket = f"sec-archive-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    day = date(2026, 2, 2)
    at = datetime(2026, 2, 2, 12, tzinfo=UTC)
    shared_ids = [f"shared-{uuid.uuid4()}" for _ in range(4)]  # one Twitch delivery, two tenants
    with db.connect(cfg) as conn:
        for agency, extra in ((a, 2), (b, 5)):
            with db.tenant_transaction(conn, agency.company):
                eventstore.append(
                    conn,
                    agency.company,
                    [
                        sample_event(m, "4242", agency.creators[0], occurred_at=at)
                        for m in shared_ids + [f"{agency.name}-{i}" for i in range(extra)]
                    ],
                )
    with db.connect(cfg, autocommit=True) as conn:
        results = {
            agency.company: archive.export_day(conn, client, bucket, agency.company, day)
            for agency in (a, b)
        }
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {k for r in results.values() for k in r.keys.values()}
    for agency in (a, b):
        result = results[agency.company]
        assert result.rows == len(shared_ids) + (2 if agency is a else 5)
        for fmt, key in result.keys.items():
            assert key.startswith(f"events/{fmt}/company_id={agency.company}/date=2026-02-02/")
        raw = client.get_object(Bucket=bucket, Key=result.keys["ndjson"])["Body"].read()
        text = gzip.decompress(raw).decode()
        lines = [json.loads(line) for line in text.splitlines()]
        assert {line["company_id"] for line in lines} == {str(agency.company)}
        assert {line["creator_id"] for line in lines} == {str(agency.creators[0])}
        other = b if agency is a else a
        assert f"{other.name}-" not in text and str(other.company) not in text
        parquet = client.get_object(Bucket=bucket, Key=result.keys["parquet"])["Body"].read()
        table = pq.read_table(pa.BufferReader(parquet))
        assert set(table.column("company_id").to_pylist()) == {str(agency.company)}
        assert table.num_rows == result.rows
    # the same message ids in both exports, each under its own company's key
    assert results[a.company].keys["ndjson"] != results[b.company].keys["ndjson"]


def test_upload_keys_stay_under_the_company_prefix(
    stack: LocalStack, agencies: tuple[Agency, Agency], superuser: psycopg.Connection[Any]
) -> None:
    import urllib.request

    a, b = agencies
    a_admin, b_admin = Api(stack, a, "admin"), Api(stack, b, "admin")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    status, b_upload = b_admin(
        "POST",
        "/api/company/logo-uploads",
        {"content_type": "image/png", "content_length": len(png)},
    )
    assert status == 201
    put = urllib.request.Request(
        b_upload["upload_url"], data=png, method="PUT", headers=b_upload["headers"]
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status == 200
    # A can neither choose a key nor a name: extra fields are refused, and the key is A's
    for body in (
        {"content_type": "image/png", "content_length": 10, "key": b_upload["key"]},
        {"content_type": "image/png", "content_length": 10, "filename": "../../x.png"},
        {"content_type": "image/png\r\nx-amz-acl: public-read", "content_length": 10},
        {"content_type": "image/png", "content_length": 10, "company_id": str(b.company)},
    ):
        assert a_admin("POST", "/api/company/logo-uploads", body)[0] == 422, body
    status, a_upload = a_admin(
        "POST", "/api/company/logo-uploads", {"content_type": "image/png", "content_length": 10}
    )
    assert status == 201
    prefix = f"tenants/{a.company}/branding/"
    assert a_upload["key"].startswith(prefix) and "/" not in a_upload["key"][len(prefix) :]
    assert urllib.parse.quote(prefix) in a_upload["upload_url"]
    b_prefix = f"tenants/{b.company}/branding/"
    name = b_upload["key"][len(b_prefix) :]
    for key in (
        b_upload["key"],
        f"{prefix}../../{b.company}/branding/{name}",
        f"{prefix}..%2f..%2f{b.company}%2fbranding%2f{name}",
        f"{prefix}..\\..\\{b.company}\\branding\\{name}",
        f"/{b_upload['key']}",
        f"{prefix[:-1]}{b.company}/branding/{name}",
        f"tenants/{a.company}/../{b.company}/branding/{name}",
        f"{prefix}{b_upload['key']}",
        f"{prefix}\u2024\u2024/{b.company}/branding/{name}",
    ):
        status, answer = a_admin("POST", "/api/company/logo-uploads/confirm", {"key": key})
        assert status in (403, 404), (key, status, answer)
    assert (
        a_admin("POST", "/api/company/logo-uploads/confirm", {"key": f"{prefix}a\u0000.png"})[0]
        == 422
    )
    assert a_admin("PATCH", "/api/company", {"logo_key": b_upload["key"]})[0] == 422
    row = superuser.execute("SELECT branding FROM companies WHERE id = %s", (a.company,)).fetchone()
    assert row is not None and "logo_key" not in row["branding"]
    # B's own confirmation still works: the object was never touched
    assert b_admin("POST", "/api/company/logo-uploads/confirm", {"key": b_upload["key"]})[0] == 200


# --- 3. injection ---------------------------------------------------------------------------

PAYLOADS = [
    "' OR 1=1 --",
    "' OR '1'='1",
    "') OR ('1'='1",
    '" OR ""="',
    "1; DROP TABLE events; --",
    "'; DROP TABLE members; --",
    "' UNION SELECT * FROM events --",
    "$$; DELETE FROM creators; $$",
    "1 OR 1=1",
    "%",
    "_",
    "\\",
    "\u02bc OR 1=1 --",  # a modifier letter apostrophe
    "\uff07 OR 1=1 --",  # a fullwidth apostrophe
    "\u202e' OR 1=1 --",  # a right-to-left override
    "\x00",
    "a\x00' OR 1=1 --",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "2026-01-01T00:00:00Z' OR '1'='1",
]
EVENT_FILTERS = (
    "type",
    "topic",
    "creator_id",
    "since",
    "until",
    "before_seq",
    "after_seq",
    "limit",
)


def test_injection_through_every_filter_is_inert(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    superuser: psycopg.Connection[Any],
) -> None:
    a, b = agencies
    admin = Api(stack, a, "admin")
    before = {agency.company: counts(superuser, agency.company) for agency in (a, b)}
    mine = {str(c) for c in a.creators} | {None}
    a_max = max(e["seq"] for e in admin("GET", "/api/events?limit=200")[1]["items"])
    for payload in PAYLOADS:
        quoted = urllib.parse.quote(payload, safe="")
        queries = [f"/api/events?{name}={quoted}" for name in EVENT_FILTERS]
        queries += [f"/api/audit?before_id={quoted}", f"/api/audit?limit={quoted}"]
        queries += [f"/api/events?type=channel.follow&type={quoted}"]
        for path in queries:
            status, answer = admin("GET", path)
            assert status < 500, (path, status)
            assert status in (200, 400, 422), (path, status)
            if status == 200 and path.startswith("/api/events"):
                assert {e["creator_id"] for e in answer["items"]} <= mine, path
                assert all(e["seq"] <= a_max for e in answer["items"]), path
                if "type=" in path and "channel.follow" not in path:
                    assert answer["items"] == [], path
        for method, path, body in (
            ("GET", f"/api/creators/{quoted}", None),
            ("PATCH", f"/api/members/{quoted}", {"role": "viewer"}),
            ("POST", f"/api/events/{quoted}/ack", {"note": "x"}),
        ):
            status, _ = admin(method, path, body)
            assert status in (404, 405, 422), (method, path, status)
    # values that reach SQL as bind parameters are stored verbatim, or refused
    creator = a.creators[1]
    for payload in PAYLOADS:
        status, answer = admin("PATCH", f"/api/creators/{creator}", {"notes": payload})
        if "\x00" in payload:
            assert status == 422
            continue
        assert status == 200 and answer["notes"] == payload
        assert admin("GET", f"/api/creators/{creator}")[1]["notes"] == payload
    subject = "x'); DROP TABLE users; --\u02bc"
    status, member = admin("POST", "/api/members", {"subject": subject, "role": "viewer"})
    assert status == 201 and member["subject"] == subject
    assert admin("DELETE", f"/api/members/{member['user_id']}")[0] == 204
    # every table is intact, B is untouched, A changed only where it was written to
    for table in ("companies", "users", "members", "creators", "events", "audit_logs"):
        assert superuser.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()["t"]
    assert counts(superuser, b.company) == before[b.company]
    after = counts(superuser, a.company)
    written = ("audit_logs ", "users ")
    assert {k: v for k, v in after.items() if not k.startswith(written)} == {
        k: v for k, v in before[a.company].items() if not k.startswith(written)
    }


# --- 4. oversized and deeply nested bodies ----------------------------------------------------


def _ledger(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", env["FIRESTORE_EMULATOR_HOST"])
    return firestore.Client(project=local.PROJECT).collection("eventsub_deliveries")


def _signed(env: dict[str, str], body: bytes) -> dict[str, str]:
    """Headers of a genuine delivery for exactly these bytes."""
    headers = dict(twitchsim.sign_delivery({"x": 1}, env["EVENTSUB_SECRET"]).headers)
    message_id = f"sec-{uuid.uuid4()}"
    stamp = headers[eventsub.MESSAGE_TIMESTAMP]
    headers[eventsub.MESSAGE_ID] = message_id
    headers[eventsub.MESSAGE_SIGNATURE] = eventsub.sign(
        env["EVENTSUB_SECRET"].encode(), message_id, stamp, body
    )
    return headers


def _request(
    path: str,
    headers: dict[str, str] | list[tuple[str, str]],
    body: bytes,
    *,
    chunked: bool = False,
    host: str = "127.0.0.1",
) -> bytes:
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in items]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        step = 16384
        pieces = [body[i : i + step] for i in range(0, len(body), step)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + payload


def test_the_webhook_refuses_oversized_and_deeply_nested_bodies(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = env["WEBHOOK_URL"]
    too_big = b'{"pad": "' + b"x" * eventsub.MAX_BODY_BYTES + b'"}'
    deep_list = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"event": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}"
    sent = []
    for body, chunked, expected in (
        (too_big, False, 413),
        (too_big, True, 413),
        (deep_list, False, 400),
        (deep_object, False, 400),
        (deep_object, True, 400),
    ):
        headers = _signed(env, body)
        answer = exchange(url, _request("/", headers, body, chunked=chunked))
        assert statuses(answer) == [expected], (len(body), chunked, answer[:200])
        assert b"Traceback" not in answer
        sent.append(headers[eventsub.MESSAGE_ID])
    ledger = _ledger(env, monkeypatch)
    for message_id in sent:
        assert not ledger.document(message_id).get().exists


REST_BODIES = [
    ("POST", "/api/creators"),
    ("PATCH", "/api/creators/{creator}"),
    ("POST", "/api/members"),
    ("PATCH", "/api/members/{user}"),
    ("PATCH", "/api/company"),
    ("POST", "/api/company/logo-uploads"),
    ("POST", "/api/company/logo-uploads/confirm"),
    ("POST", "/api/events/1/ack"),
]


def test_the_api_refuses_oversized_and_deeply_nested_bodies(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    superuser: psycopg.Connection[Any],
) -> None:
    a, _ = agencies
    owner = Api(stack, a, "owner")
    before = counts(superuser, a.company)
    url = relay_url(stack)
    auth = {"Authorization": f"Bearer {owner.token}", "Content-Type": "application/json"}
    big = b'{"notes": "' + b"x" * 200_000 + b'"}'
    deep = b'{"notes": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    wide = json.dumps({"labels": ["x"] * 12_000}).encode()
    for method, template in REST_BODIES:
        path = template.format(creator=a.creators[0], user=a.users["viewer"])
        for body, chunked, allowed in (
            (big, False, {413}),
            (big, True, {413}),  # streamed without a length: the limit still holds
            (deep, False, {400, 422}),
            (deep, True, {400, 422}),
            (wide, False, {413, 422}),
        ):
            request = _request(path, auth, body, chunked=chunked).replace(
                b"POST", method.encode(), 1
            )
            answer = exchange(url, request)
            found = statuses(answer)
            assert len(found) == 1 and found[0] in allowed, (method, path, chunked, answer[:300])
            text = answer.partition(b"\r\n\r\n")[2]
            assert json.loads(text)["error"] in ("too_large", "invalid", "bad_request")
    assert counts(superuser, a.company) == before


# --- 5. request smuggling and header injection -------------------------------------------------


def _ambiguous(
    path: str, headers: list[tuple[str, str]], body: bytes, smuggled: bytes
) -> dict[str, bytes]:
    """Requests whose framing or headers a proxy and a server could read differently."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers)
    start = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return {
        "CL.TE": (
            f"{start}Content-Length: {len(chunk)}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + chunk
            + smuggled
        ),
        "TE.CL": (
            f"{start}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n".encode()
            + chunk
            + smuggled
        ),
        "TE obfuscated": (
            f"{start}Content-Length: {len(body)}\r\nTransfer-Encoding : chunked\r\n\r\n".encode()
            + body
            + smuggled
        ),
        "TE list": (
            f"{start}Content-Length: {len(chunk)}\r\n"
            "Transfer-Encoding: identity, chunked\r\n\r\n".encode()
            + chunk
            + smuggled
        ),
        "two Content-Lengths": (
            f"{start}Content-Length: {len(body)}\r\nContent-Length: {len(body) + len(smuggled)}"
            "\r\n\r\n".encode()
            + body
            + smuggled
        ),
        "Content-Length list": (
            f"{start}Content-Length: {len(body)}, {len(body) + len(smuggled)}\r\n\r\n".encode()
            + body
            + smuggled
        ),
        "bare CR in a header": (
            f"{start}X-Note: a\rContent-Length: 0\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        ),
        "bare LF in a header": (
            f"{start}X-Note: a\nX-Other: b\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        ),
        "folded header": (
            f"{start}X-Note: a\r\n Transfer-Encoding: chunked\r\nContent-Length: {len(body)}"
            "\r\n\r\n".encode()
            + body
        ),
    }


def test_the_webhook_refuses_smuggling_and_duplicated_signatures(
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    agencies: tuple[Agency, Agency],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = agencies
    url = env["WEBHOOK_URL"]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, a.company):
        broadcaster = conn.execute(
            "SELECT twitch_user_id FROM creators WHERE id = %s", (a.creators[0],)
        ).fetchone()["twitch_user_id"]
    who = twitchsim.Broadcaster(broadcaster, "sec_alpha_c0")
    genuine = twitchsim.sign_delivery(
        twitchsim.notification_body("channel.raid", who), env["EVENTSUB_SECRET"]
    )
    forged = twitchsim.sign_delivery(
        twitchsim.notification_body("channel.raid", who), "not-the-secret-at-all"
    )
    genuine_headers = [(k, v) for k, v in genuine.headers.items() if k.lower() != "content-length"]
    forged_headers = {k: v for k, v in forged.headers.items() if k.lower() != "content-length"}
    smuggled = _request("/", forged_headers, forged.body).replace(b"Connection: close\r\n", b"")
    for name, request in _ambiguous("/", genuine_headers, genuine.body, smuggled).items():
        answer = exchange(url, request)
        found = statuses(answer)
        assert len(found) == 1 and found[0] in (400, 403, 501), (name, answer[:300])
    signature = eventsub.MESSAGE_SIGNATURE
    bad = "sha256=" + "0" * 64
    rest = [(k, v) for k, v in genuine_headers if k != signature]
    for headers in (
        [*genuine_headers, (signature, bad)],
        [(signature, bad), *genuine_headers],
        [*genuine_headers, (signature, genuine.headers[signature])],
        [*rest, (signature.lower(), bad), (signature.upper(), genuine.headers[signature])],
        [*rest, (signature, genuine.headers[signature] + "\rX-Injected: 1")],
        [*rest, (signature, genuine.headers[signature] + "\nX-Injected: 1")],
        [*rest, (signature, genuine.headers[signature] + ", " + bad)],
        [*genuine_headers, (eventsub.MESSAGE_ID, f"sec-{uuid.uuid4()}")],
    ):
        answer = exchange(url, _request("/", headers, genuine.body))
        assert statuses(answer) in ([403], [400]), answer[:300]
    ledger = _ledger(env, monkeypatch)
    assert not ledger.document(forged.message_id).get().exists
    assert not ledger.document(genuine.message_id).get().exists  # every variant was refused
    # the genuine delivery, sent plainly (twice), is accepted once
    for _ in range(2):
        assert statuses(exchange(url, _request("/", genuine_headers, genuine.body))) == [204]
    assert ledger.document(genuine.message_id).get().to_dict()["state"] == "enqueued"
    with db.connect(cfg) as conn:

        def stored() -> int:
            with db.tenant_transaction(conn, a.company):
                return int(
                    conn.execute(
                        "SELECT count(*) AS n FROM events WHERE twitch_message_id = %s",
                        (genuine.message_id,),
                    ).fetchone()["n"]
                )

        assert wait_for(lambda: stored() == 1)


def test_the_api_refuses_smuggling_and_header_injection(
    stack: LocalStack, agencies: tuple[Agency, Agency], superuser: psycopg.Connection[Any]
) -> None:
    a, _ = agencies
    owner = Api(stack, a, "owner")
    url = relay_url(stack)
    auth = [("Authorization", f"Bearer {owner.token}"), ("Content-Type", "application/json")]
    subject = f"smuggled-{uuid.uuid4().hex[:8]}"
    smuggled_body = json.dumps({"subject": subject, "role": "owner"}).encode()
    smuggled = _request("/api/members", auth, smuggled_body).replace(b"Connection: close\r\n", b"")
    body = json.dumps({"note": "front"}).encode()
    for name, request in _ambiguous("/api/events/1/ack", auth, body, smuggled).items():
        answer = exchange(url, request)
        assert statuses(answer) == [400], (name, answer[:300])
    for header in (
        ("Authorization", f"Bearer {owner.token}\rX-Company: {uuid.uuid4()}"),
        ("Authorization", f"Bearer {owner.token}\nX-Company: {uuid.uuid4()}"),
        ("X-Forwarded-For", "1.2.3.4\rAuthorization: Bearer x"),
    ):
        request = _request("/api/members", [header, auth[1]], smuggled_body)
        assert statuses(exchange(url, request)) == [400], header
    # a token in another header, or split across two Authorization headers, does not count
    for headers in (
        [("Authorization", "Bearer"), ("Authorization", owner.token), auth[1]],
        [("X-Authorization", f"Bearer {owner.token}"), auth[1]],
    ):
        request = _request("/api/members", headers, smuggled_body)
        assert statuses(exchange(url, request)) == [401], headers
    found = superuser.execute(
        "SELECT count(*) AS n FROM users WHERE subject = %s", (subject,)
    ).fetchone()
    assert found is not None and found["n"] == 0


# --- 6. clients that stop reading --------------------------------------------------------------


@pytest.fixture(scope="module")
def tight_relay(stack: LocalStack) -> RelayServer:
    return stack.start_relay(extra_env={"RELAY_SEND_QUEUE_LIMIT": str(SEND_QUEUE_LIMIT)})


def test_a_client_that_stops_reading_is_cut_off_and_the_rest_keep_streaming(
    stack: LocalStack,
    env: dict[str, str],
    cfg: settings.DatabaseSettings,
    tight_relay: RelayServer,
    clients: list[FeedClient],
) -> None:
    agency = make_agency(cfg, "sec_slow", 1)
    token = token_for(stack, agency, "viewer")
    reader = feed_client(clients, tight_relay.url)
    assert reader.connect({"token": token})
    reader.wait_live()
    stalled = StalledClient(tight_relay.url, {"token": token})
    try:
        assert stalled.connected.startswith("40{"), stalled.connected
        stalled.read_until('42["live"')
        sid = json.loads(stalled.connected[2:])["sid"]
        publisher = SocketIOPublisher(env["REDIS_URL"])
        published: list[int] = []
        padding = "x" * 60_000  # about 60 kB a frame: the socket buffers fill within ~100
        cut = '"slow client disconnected"'
        ended = None
        for _ in range(60):  # bounded: at most ~18 MB in all
            published += publish_stored(
                cfg, publisher, agency.company, None, 5, message_text=padding
            )
            try:
                stalled.send("3")  # answering pings it never read: alive, just not reading
            except ConnectionResetError:
                ended = "reset"
                break
            if cut in relay_log(tight_relay):
                break
        assert wait_for(lambda: cut in relay_log(tight_relay), timeout=15)
        # reset: neither left open nor kept until the client drains it
        assert (ended or stalled.how_it_ends(quiet_seconds=15)) == "reset"
    finally:
        stalled.close()
    record = next(json.loads(line) for line in relay_log(tight_relay).splitlines() if cut in line)
    assert record["severity"] == "WARNING"
    assert (record["sid"], record["company_id"]) == (sid, str(agency.company))
    assert record["limit"] == SEND_QUEUE_LIMIT < record["queued"]
    # the reader got everything, and the relay keeps serving it and newcomers
    assert wait_for(lambda: reader.seqs() == published, timeout=30)
    more = publish_stored(cfg, publisher, agency.company, None, 2)
    assert wait_for(lambda: reader.seqs()[-2:] == more)
    newcomer = feed_client(clients, tight_relay.url)
    assert newcomer.connect({"token": token, "last_seq": more[0]})
    newcomer.wait_live()
    assert newcomer.seqs() == more[1:]


def _handshake(relay_url: str, origin: str | None) -> int:
    """Engine.IO's first request, as a browser page at `origin` (or a script, with None)."""
    headers = {"Origin": origin} if origin else {}
    request = urllib.request.Request(
        f"{relay_url}/socket.io/?EIO=4&transport=polling", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_socket_from_another_origin_is_refused(stack: LocalStack) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    relay = stack.endpoints.relay_url
    assert _handshake(relay, "http://evil.example") == 400
    assert _handshake(relay, relay) == 200  # the dashboard's own page
    assert _handshake(relay, None) == 200  # Python and Node clients send no Origin
    ws = relay.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        websockets.sync.client.connect(ws, origin=websockets.Origin("http://evil.example"))
    with websockets.sync.client.connect(ws, origin=websockets.Origin(relay)) as same:
        assert same.recv(timeout=10).startswith("0{")  # the Engine.IO open packet


def test_the_dashboard_and_api_carry_security_headers_and_no_cors_for_strangers(
    stack: LocalStack,
) -> None:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    relay = stack.endpoints.relay_url
    for path in ("/", "/api/openapi.json"):
        with urllib.request.urlopen(f"{relay}{path}", timeout=10) as response:
            csp = response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
        for directive in (
            "default-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ):
            assert directive in csp, (path, csp)
        assert "'unsafe-inline'" not in csp
    preflight = urllib.request.Request(
        f"{relay}/api/me",
        method="OPTIONS",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    try:
        with urllib.request.urlopen(preflight, timeout=10) as response:
            allowed = response.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as exc:
        allowed = exc.headers.get("Access-Control-Allow-Origin")
    assert allowed is None
