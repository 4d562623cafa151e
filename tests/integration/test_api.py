"""The REST API on the live local app: isolation between companies, roles, uploads, paging."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controlroom import settings
from controlroom.adapters import db, eventstore
from controlroom.dev.stack import LocalStack
from controlroom.dev.twitchstub import user_id_for
from tests.integration.conftest import new_company, services_stack
from tests.integration.fake_helix import FakeTwitch
from tests.integration.listener import Recorder, wait_for
from tests.integration.tenant_data import sample_event

ROLES = ("viewer", "operator", "admin", "owner")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "api") as running:
        yield running


@dataclass
class Agency:
    company: uuid.UUID
    users: dict[str, uuid.UUID]
    creators: list[uuid.UUID]
    name: str


def make_agency(cfg: settings.DatabaseSettings, name: str, events: int) -> Agency:
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        users, creators = {}, []
        with db.tenant_transaction(conn, company):
            for role in ROLES:
                users[role] = conn.execute(
                    "INSERT INTO users (company_id, subject, email) "
                    "VALUES (%s, %s, %s) RETURNING id",
                    (company, f"{name}-{role}", f"{role}@{name}.example"),
                ).fetchone()["id"]
                conn.execute(
                    "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
                    (company, users[role], role),
                )
            for i in range(2):
                creators.append(
                    conn.execute(
                        "INSERT INTO creators "
                        "(company_id, twitch_user_id, twitch_login, display_name) "
                        "VALUES (%s, %s, %s, %s) RETURNING id",
                        (
                            company,
                            f"{abs(hash(name)) % 10**8}{i}",
                            f"{name}_c{i}",
                            f"{name} creator {i}",
                        ),
                    ).fetchone()["id"]
                )
        with db.tenant_transaction(conn, company):
            eventstore.append(
                conn,
                company,
                [
                    sample_event(
                        f"{name}-e{i}",
                        "1",
                        creators[i % 2],
                        topic="audience" if i % 2 else "stream",
                        type="channel.follow" if i % 2 else "stream.online",
                    )
                    for i in range(events)
                ],
            )
    return Agency(company, users, creators, name)


@pytest.fixture(scope="module")
def agencies(stack: LocalStack) -> tuple[Agency, Agency]:
    assert stack.endpoints is not None
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())
    return make_agency(cfg, "alpha", 5), make_agency(cfg, "bravo", 12)


class Api:
    def __init__(self, stack: LocalStack, agency: Agency, role: str) -> None:
        assert stack.endpoints is not None and stack.endpoints.relay_url
        self.base = stack.endpoints.relay_url
        self.token = stack.keys.token(f"{agency.name}-{role}", agency.company, role)

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                text = response.read()
                if response.headers.get_content_type() == "text/csv":
                    return response.status, text.decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, json.loads(text) if text else None


def test_isolation_walk_as_a_member_of_a_against_b(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    owner = Api(stack, a, "owner")
    b_creator, b_user = str(b.creators[0]), str(b.users["viewer"])
    b_only_seq = 12  # alpha has 5 events, bravo 12
    probes = [
        ("GET", f"/api/creators/{b_creator}", None),
        ("PATCH", f"/api/creators/{b_creator}", {"notes": "mine now"}),
        ("DELETE", f"/api/creators/{b_creator}", None),
        ("PATCH", f"/api/members/{b_user}", {"role": "admin"}),
        ("DELETE", f"/api/members/{b_user}", None),
        ("POST", f"/api/events/{b_only_seq}/ack", {"note": "x"}),
    ]
    seen: list[Any] = []
    for method, path, body in probes:
        status, answer = owner(method, path, body)
        assert status == 404, (method, path, status, answer)
        seen.append(answer)
    status, page = owner("GET", f"/api/events?creator_id={b_creator}")
    assert status == 200 and page["items"] == []
    status, answer = owner(
        "POST",
        "/api/company/logo-uploads/confirm",
        {"key": f"tenants/{b.company}/branding/logo-x.png"},
    )
    assert status == 403
    seen.append(answer)
    for path in (
        "/api/me",
        "/api/company",
        "/api/creators",
        "/api/members",
        "/api/events?limit=200",
        "/api/audit?limit=200",
        "/api/audit/verify",
    ):
        status, answer = owner("GET", path)
        assert status == 200, path
        seen.append(answer)
    dump = json.dumps(seen)
    for secret in (str(b.company), b_creator, b_user, "bravo", *(str(c) for c in b.creators)):
        assert secret not in dump
    # and B's rows are untouched
    b_owner = Api(stack, b, "owner")
    assert b_owner("GET", f"/api/creators/{b_creator}")[1]["notes"] == ""
    assert len(b_owner("GET", "/api/members")[1]) == 4


ROLE_MATRIX: list[tuple[str, str, Any, str]] = [
    # method, path, body, the least role allowed
    ("GET", "/api/me", None, "viewer"),
    ("GET", "/api/creators", None, "viewer"),
    ("GET", "/api/members", None, "viewer"),
    ("GET", "/api/events", None, "viewer"),
    ("POST", "/api/events/1/ack", {"note": "seen"}, "operator"),
    ("PATCH", "/api/company", {"primary_color": "#112233"}, "admin"),
    (
        "POST",
        "/api/company/logo-uploads",
        {"content_type": "image/png", "content_length": 10},
        "admin",
    ),
    ("POST", "/api/creators", {"login": "fresh_{role}", "twitch_user_id": "55{n}"}, "admin"),
    ("POST", "/api/members", {"subject": "new-{role}", "role": "viewer"}, "admin"),
    ("GET", "/api/audit", None, "admin"),
    ("GET", "/api/audit/verify", None, "admin"),
    ("GET", "/api/incidents", None, "viewer"),
    ("GET", "/api/incident-rules", None, "viewer"),
    ("GET", "/api/viewers", None, "viewer"),
    (
        "PUT",
        "/api/incident-rules/gift_bomb",
        {"enabled": True, "severity": "info", "params": {"min_gifts": 100}},
        "admin",
    ),
    ("GET", "/api/notification-channels", None, "admin"),
    (
        "POST",
        "/api/notification-channels",
        {
            "kind": "slack",
            "name": "c-{role}",
            "url": "https://hooks.slack.com/services/T/B/{n}",
            "enabled": False,
        },
        "admin",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "least"), ROLE_MATRIX)
def test_each_role_is_allowed_or_refused(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    method: str,
    path: str,
    body: Any,
    least: str,
) -> None:
    a, _ = agencies
    for n, role in enumerate(ROLES):
        filled = (
            json.loads(json.dumps(body).replace("{role}", role).replace("{n}", str(n)))
            if body
            else None
        )
        status, answer = Api(stack, a, role)(method, path, filled)
        if ROLES.index(role) >= ROLES.index(least):
            assert status in (200, 201), (role, path, status, answer)
        else:
            assert status == 403, (role, path, status, answer)
            assert answer["error"] == "forbidden"


def fresh_targets(stack: LocalStack, agency: Agency, tag: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A creator and a viewer member of the agency that only this request will touch."""
    assert stack.endpoints is not None
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())
    with db.connect(cfg) as conn, db.tenant_transaction(conn, agency.company):
        creator = conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            (
                agency.company,
                str(uuid.uuid4().int)[:12],
                f"t{uuid.uuid4().hex[:12]}",
                f"Target {tag}",
            ),
        ).fetchone()["id"]
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
            (agency.company, f"target-{tag}-{uuid.uuid4()}"),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (agency.company, user),
        )
    return creator, user


def stored_state(stack: LocalStack, agency: Agency, kind: str, target: uuid.UUID) -> Any:
    """The column a request changes (notes, role), or None once the row is gone."""
    assert stack.endpoints is not None
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())
    sql = (
        "SELECT notes AS v FROM creators WHERE id = %s"
        if kind == "creators"
        else "SELECT role AS v FROM members WHERE user_id = %s"
    )
    with db.connect(cfg) as conn, db.tenant_transaction(conn, agency.company):
        row = conn.execute(sql, (target,)).fetchone()
    return row["v"] if row else None


# method, collection, body, what the row holds afterwards when the request is allowed
WRITES_BY_ID: list[tuple[str, str, Any, Any]] = [
    ("PATCH", "creators", {"notes": "edited"}, "edited"),
    ("DELETE", "creators", None, None),
    ("PATCH", "members", {"role": "operator"}, "operator"),
    ("DELETE", "members", None, None),
]


@pytest.mark.parametrize(("method", "kind", "body", "after"), WRITES_BY_ID)
def test_creators_and_members_are_changed_and_removed_from_admin_up(
    stack: LocalStack,
    agencies: tuple[Agency, Agency],
    method: str,
    kind: str,
    body: Any,
    after: Any,
) -> None:
    a, _ = agencies
    for role in ROLES:
        creator, member = fresh_targets(stack, a, f"{method}-{kind}-{role}".lower())
        target = creator if kind == "creators" else member
        before = stored_state(stack, a, kind, target)
        status, answer = Api(stack, a, role)(method, f"/api/{kind}/{target}", body)
        if ROLES.index(role) >= ROLES.index("admin"):
            assert status == (204 if method == "DELETE" else 200), (role, status, answer)
            assert stored_state(stack, a, kind, target) == after
        else:
            assert (status, answer["error"]) == (403, "forbidden"), (role, status, answer)
            assert stored_state(stack, a, kind, target) == before


def test_admins_manage_members_below_admin_only(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    admin, owner = Api(stack, a, "admin"), Api(stack, a, "owner")
    _, member = fresh_targets(stack, a, "promote")
    assert admin("PATCH", f"/api/members/{member}", {"role": "admin"})[0] == 403
    assert stored_state(stack, a, "members", member) == "viewer"
    assert owner("PATCH", f"/api/members/{member}", {"role": "admin"})[0] == 200
    # now an admin: another admin may neither demote nor remove it; the owner may
    assert admin("PATCH", f"/api/members/{member}", {"role": "viewer"})[0] == 403
    assert admin("DELETE", f"/api/members/{member}")[0] == 403
    assert stored_state(stack, a, "members", member) == "admin"
    assert owner("DELETE", f"/api/members/{member}")[0] == 204
    assert stored_state(stack, a, "members", member) is None


def test_only_admins_and_owners_confirm_a_logo(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    png = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32
    status, upload = Api(stack, a, "admin")(
        "POST", "/api/company/logo-uploads", {"content_type": "image/png", "content_length": 40}
    )
    assert status == 201
    put = urllib.request.Request(
        upload["upload_url"], data=png, method="PUT", headers=upload["headers"]
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status == 200
    for role in ROLES:
        api = Api(stack, a, role)
        status, answer = api("POST", "/api/company/logo-uploads/confirm", {"key": upload["key"]})
        logo = api("GET", "/api/company")[1]["branding"]["logo_key"]
        if ROLES.index(role) >= ROLES.index("admin"):
            assert status == 200, (role, status, answer)
            assert logo == upload["key"]
        else:
            assert (status, answer["error"]) == (403, "forbidden"), (role, status, answer)
            assert logo != upload["key"]


def test_member_rules_and_the_last_owner(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    admin, owner = Api(stack, a, "admin"), Api(stack, a, "owner")
    assert admin("POST", "/api/members", {"subject": "wannabe", "role": "admin"})[0] == 403
    assert admin("PATCH", f"/api/members/{a.users['owner']}", {"role": "viewer"})[0] == 403
    assert admin("PATCH", f"/api/members/{a.users['operator']}", {"role": "viewer"})[0] == 200
    status, answer = owner("PATCH", f"/api/members/{a.users['owner']}", {"role": "admin"})
    assert (status, answer["error"]) == (409, "conflict")
    assert owner("DELETE", f"/api/members/{a.users['owner']}")[0] == 409
    assert owner("POST", "/api/members", {"subject": "alpha-owner", "role": "viewer"})[0] == 409
    status, audit_page = owner("GET", "/api/audit")
    actions = [e["action"] for e in audit_page["items"]]
    assert "member.role" in actions
    assert owner("GET", "/api/audit/verify")[1]["intact"] is True


def test_an_acknowledgement_is_audited_and_the_chain_holds(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    acker, owner = Api(stack, a, "admin"), Api(stack, a, "owner")
    note = f"handled {uuid.uuid4().hex[:8]}"
    assert acker("POST", "/api/events/2/ack", {"note": note})[0] == 200
    entries = owner("GET", "/api/audit?limit=200")[1]["items"]
    acks = [e for e in entries if e["action"] == "event.ack" and e["after"] == {"note": note}]
    assert len(acks) == 1
    assert (acks[0]["target_type"], acks[0]["target_id"]) == ("event", "2")
    assert acks[0]["actor_subject"] == f"{a.name}-admin"
    # a refused acknowledgement leaves no trace
    assert acker("POST", "/api/events/999999/ack", {"note": note})[0] == 404
    after = owner("GET", "/api/audit?limit=200")[1]["items"]
    assert [e for e in after if e["action"] == "event.ack" and e["target_id"] == "999999"] == []
    assert owner("GET", "/api/audit/verify")[1]["intact"] is True


def test_events_history_filters_and_keyset_pages(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    _, b = agencies
    viewer = Api(stack, b, "viewer")
    status, page = viewer("GET", "/api/events?limit=5")
    assert status == 200
    assert [e["seq"] for e in page["items"]] == [12, 11, 10, 9, 8]
    _, page2 = viewer("GET", f"/api/events?limit=5&before_seq={page['next_before_seq']}")
    assert [e["seq"] for e in page2["items"]] == [7, 6, 5, 4, 3]
    _, forward = viewer("GET", "/api/events?after_seq=10")
    assert [e["seq"] for e in forward["items"]] == [11, 12]
    _, stream_only = viewer("GET", "/api/events?topic=stream&limit=200")
    assert {e["topic"] for e in stream_only["items"]} == {"stream"}
    _, by_type = viewer("GET", "/api/events?type=channel.follow&type=nope&limit=200")
    assert {e["type"] for e in by_type["items"]} == {"channel.follow"}
    _, by_creator = viewer("GET", f"/api/events?creator_id={b.creators[1]}&limit=200")
    assert {e["creator_id"] for e in by_creator["items"]} == {str(b.creators[1])}
    for bad in (
        "limit=0",
        "limit=201",
        "before_seq=-1",
        "topic=weather",
        "before_seq=3&after_seq=1",
        "creator_id=' OR 1=1 --",
        "since=yesterday",
    ):
        status, answer = viewer("GET", f"/api/events?{bad}".replace(" ", "%20"))
        assert status in (400, 422), bad
        assert "error" in answer and "Traceback" not in json.dumps(answer)
    # SQL injection through a filter is just a value that matches nothing
    status, answer = viewer("GET", "/api/events?type=x%27%20OR%20%271%27%3D%271")
    assert status == 200 and answer["items"] == []


def test_logo_upload_end_to_end(stack: LocalStack, agencies: tuple[Agency, Agency]) -> None:
    a, _ = agencies
    admin, viewer = Api(stack, a, "admin"), Api(stack, a, "viewer")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    status, upload = admin(
        "POST",
        "/api/company/logo-uploads",
        {"content_type": "image/png", "content_length": len(png)},
    )
    assert status == 201
    assert upload["key"].startswith(f"tenants/{a.company}/branding/")
    put = urllib.request.Request(
        upload["upload_url"], data=png, method="PUT", headers=upload["headers"]
    )
    with urllib.request.urlopen(put, timeout=10) as response:  # a plain HTTP client, as a browser
        assert response.status == 200
    status, company = admin("POST", "/api/company/logo-uploads/confirm", {"key": upload["key"]})
    assert status == 200
    assert company["branding"]["logo_key"] == upload["key"]
    shown = viewer("GET", "/api/company")[1]["branding"]
    assert shown["logo_key"] == upload["key"] and shown["logo_url"]
    with urllib.request.urlopen(shown["logo_url"], timeout=10) as response:
        assert response.read() == png
    # refusals
    assert (
        admin(
            "POST",
            "/api/company/logo-uploads",
            {"content_type": "application/pdf", "content_length": 10},
        )[0]
        == 422
    )
    assert (
        admin(
            "POST",
            "/api/company/logo-uploads",
            {"content_type": "image/png", "content_length": 2 * 1024 * 1024},
        )[0]
        == 413
    )
    assert (
        admin(
            "POST", "/api/company/logo-uploads/confirm", {"key": "tenants/other/branding/logo.png"}
        )[0]
        == 403
    )
    assert (
        admin(
            "POST",
            "/api/company/logo-uploads/confirm",
            {"key": f"tenants/{a.company}/branding/../x.png"},
        )[0]
        == 403
    )
    assert (
        admin(
            "POST",
            "/api/company/logo-uploads/confirm",
            {"key": f"tenants/{a.company}/branding/never.png"},
        )[0]
        == 404
    )
    # an object uploaded with the wrong type is refused at confirmation
    _, upload = admin(
        "POST", "/api/company/logo-uploads", {"content_type": "image/png", "content_length": 5}
    )
    sneaky = urllib.request.Request(
        upload["upload_url"].split("?")[0],
        data=b"hello",
        method="PUT",
        headers={"Content-Type": "text/html"},
    )
    with urllib.request.urlopen(sneaky, timeout=10):  # moto does not check signatures
        pass
    assert admin("POST", "/api/company/logo-uploads/confirm", {"key": upload["key"]})[0] == 422


def test_svg_logos_are_refused(stack: LocalStack, agencies: tuple[Agency, Agency]) -> None:
    """An SVG can carry script: refused when declared, and when its bytes pose as a PNG."""
    a, _ = agencies
    admin = Api(stack, a, "admin")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    status, answer = admin(
        "POST",
        "/api/company/logo-uploads",
        {"content_type": "image/svg+xml", "content_length": len(svg)},
    )
    assert (status, answer["error"]) == (422, "invalid")
    assert "SVG" in answer["detail"]
    status, upload = admin(
        "POST",
        "/api/company/logo-uploads",
        {"content_type": "image/png", "content_length": len(svg)},
    )
    assert status == 201
    put = urllib.request.Request(
        upload["upload_url"], data=svg, method="PUT", headers=upload["headers"]
    )
    with urllib.request.urlopen(put, timeout=10) as response:
        assert response.status == 200
    status, answer = admin("POST", "/api/company/logo-uploads/confirm", {"key": upload["key"]})
    assert (status, answer["error"]) == (422, "invalid")
    assert admin("GET", "/api/company")[1]["branding"].get("logo_key") != upload["key"]


def test_bad_requests_get_honest_statuses(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    admin = Api(stack, a, "admin")
    assert admin("GET", "/api/me", headers={"Authorization": "Bearer nope"})[0] == 401
    assert admin("GET", "/api/nowhere")[0] == 404
    assert admin("POST", "/api/creators", raw=b"{not json")[0] == 422
    assert admin("POST", "/api/creators", {"login": "UPPER", "twitch_user_id": "1"})[0] == 422
    # a login alone is resolved at Twitch (the local stack's stand-in)
    status, found = admin("POST", "/api/creators", {"login": "ok_login"})
    assert (status, found["twitch_user_id"]) == (201, user_id_for("ok_login"))
    assert (
        admin("POST", "/api/creators", {"login": "x", "twitch_user_id": "1", "extra": 1})[0] == 422
    )
    assert admin("POST", "/api/creators", raw=b"[" * 70_000)[0] == 413
    status, _body = admin("POST", "/api/creators", {"login": "dupe", "twitch_user_id": "77"})
    assert status == 201
    assert admin("POST", "/api/creators", {"login": "dupe", "twitch_user_id": "77"})[0] == 409
    assert admin("GET", "/api/creators/not-a-uuid")[0] == 422
    assert admin("GET", "/healthz")[1] == {"status": "ok"}
    assert admin("GET", "/readyz")[1] == {"status": "ready"}


def test_schemathesis_finds_no_server_error_or_schema_violation(stack: LocalStack) -> None:
    # an agency of its own: the stateful phase follows links and really deletes members
    assert stack.endpoints is not None
    fuzzed = make_agency(settings.DatabaseSettings.from_env(stack.endpoints.env()), "charlie", 3)
    admin = Api(stack, fuzzed, "admin")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{admin.base}/api/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--header",
            f"Authorization: Bearer {admin.token}",
            "--max-examples",
            "15",
            "--request-timeout",
            "10",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:]


def test_database_down_is_a_503(stack: LocalStack, agencies: tuple[Agency, Agency]) -> None:
    a, _ = agencies
    viewer = Api(stack, a, "viewer")
    stack.postgres.stop()
    try:
        status, answer = viewer("GET", "/api/creators")
        assert (status, answer["error"]) == (503, "unavailable")
        assert viewer("GET", "/readyz")[0] == 503
    finally:
        stack.postgres.start()
    assert viewer("GET", "/api/creators")[0] == 200


def test_text_that_cannot_be_stored_is_a_422(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    operator = Api(stack, a, "operator")
    assert operator("POST", "/api/events/1/ack", raw=b'{"note": "nul \\u0000 byte"}')[0] == 422
    assert operator("POST", "/api/events/1/ack", raw=b'{"note": "lone \\ud800"}')[0] == 422
    assert operator("GET", "/api/events?type=a%00b")[0] == 422


def test_adding_by_login_asks_twitch_and_requests_a_reconcile(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    twitch = FakeTwitch().start()
    with Recorder() as recorder:
        relay = stack.start_relay(
            extra_env={
                "TWITCH_CLIENT_ID": "test-client",
                "TWITCH_CLIENT_SECRET": "test-secret",
                "HELIX_API_URL": f"{twitch.url}/helix",
                "TWITCH_TOKEN_URL": f"{twitch.url}/oauth2/token",
                "SUBSCRIPTIONS_URL": f"{recorder.url}/subscriptions",
            }
        )
        admin = Api(stack, a, "admin")
        admin.base = relay.url
        status, created = admin("POST", "/api/creators", {"login": "newcreator"})
        assert status == 201
        assert (created["twitch_user_id"], created["display_name"]) == ("424242", "NewCreator")
        assert admin("POST", "/api/creators", {"login": "nobody_here"})[0] == 404
        assert admin("DELETE", f"/api/creators/{created['id']}")[0] == 204
        assert wait_for(lambda: len(recorder.received) >= 2, timeout=90)
        reasons = sorted(json.loads(body)["reason"] for _, _, body in recorder.received)
        assert reasons == ["creator added", "creator removed"]
    twitch.stop()
