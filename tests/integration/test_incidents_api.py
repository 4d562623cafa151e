"""The incident response API on the live local app: incidents (filters, paging, the ack and
resolve flow, assignee, notes), detection rules, notification channels and viewer samples,
each with the roles that may use it."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlroom import settings
from controlroom.adapters import db
from controlroom.dev.stack import LocalStack
from tests.integration.conftest import services_stack
from tests.integration.listener import Recorder, wait_for
from tests.integration.relay_client import FeedClient
from tests.integration.test_api import Agency, Api, make_agency

WEBHOOK_URL = "https://discord.com/api/webhooks/123456789/very-secret-token-abcdef"
SIGNING_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as env:
        # no pulse run during these tests: the viewer samples are the ones they write
        env.setenv("PULSE_INTERVAL_SECONDS", str(24 * 3600))
        with services_stack(tmp_path_factory, "incidents") as running:
            yield running


@pytest.fixture(scope="module")
def cfg(stack: LocalStack) -> settings.DatabaseSettings:
    assert stack.endpoints is not None
    return settings.DatabaseSettings.from_env(stack.endpoints.env())


@pytest.fixture(scope="module")
def agencies(cfg: settings.DatabaseSettings) -> tuple[Agency, Agency]:
    return make_agency(cfg, "inc_alpha", 2), make_agency(cfg, "inc_bravo", 2)


def open_incident(
    cfg: settings.DatabaseSettings,
    agency: Agency,
    *,
    rule: str = "raid_incoming",
    severity: str = "warning",
    creator: int | None = 0,
    status: str = "open",
    title: str = "Raid of 5,000 viewers",
) -> dict[str, Any]:
    """An incident stored as detection stores one: as the runtime role, in the company's
    tenant, numbered from the company's counter."""
    creator_id = agency.creators[creator] if creator is not None else None
    with db.connect(cfg) as conn, db.tenant_transaction(conn, agency.company):
        number = conn.execute(
            "INSERT INTO event_sequences (company_id, last_incident) VALUES (%s, 1) "
            "ON CONFLICT (company_id) DO UPDATE "
            "SET last_incident = event_sequences.last_incident + 1 RETURNING last_incident",
            (agency.company,),
        ).fetchone()["last_incident"]
        row = conn.execute(
            "INSERT INTO incidents (company_id, number, creator_id, rule, severity, status, "
            "title, details, dedup_key, opened_at, resolved_at, resolved_by) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now(), "
            "CASE WHEN %s = 'resolved' THEN now() END, CASE WHEN %s = 'resolved' THEN 'auto' END) "
            "RETURNING id, number",
            (
                agency.company,
                number,
                creator_id,
                rule,
                severity,
                status,
                title,
                json.dumps({"viewers": 5000}),
                f"test:{uuid.uuid4()}",
                status,
                status,
            ),
        ).fetchone()
    return {"id": str(row["id"]), "number": int(row["number"])}


def sample_viewers(cfg: settings.DatabaseSettings, agency: Agency) -> datetime:
    now = datetime.now(UTC).replace(microsecond=0)
    samples = [
        (agency.creators[0], now - timedelta(minutes=3), True, 120),
        (agency.creators[0], now - timedelta(minutes=2), True, 150),
        (agency.creators[0], now - timedelta(minutes=1), False, 0),
        (agency.creators[0], now - timedelta(hours=3), True, 999),  # outside 60 minutes
    ]
    with db.connect(cfg) as conn, db.tenant_transaction(conn, agency.company):
        for creator, at, live, viewers in samples:
            conn.execute(
                "INSERT INTO viewer_samples (company_id, creator_id, sampled_at, live, viewers) "
                "VALUES (%s, %s, %s, %s, %s)",
                (agency.company, creator, at, live, viewers),
            )
        conn.execute(
            "UPDATE creators SET viewers = 150, viewers_at = %s WHERE id = %s",
            (now - timedelta(minutes=2), agency.creators[0]),
        )
    return now


# --- incidents -----------------------------------------------------------------------------
def test_list_filters_and_pages_by_number(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    opened = [
        open_incident(cfg, a, rule="raid_incoming", severity="warning", creator=0),
        open_incident(cfg, a, rule="hate_raid", severity="critical", creator=0),
        open_incident(cfg, a, rule="gift_bomb", severity="info", creator=1),
        open_incident(cfg, a, rule="went_live", severity="info", creator=1, status="resolved"),
        open_incident(cfg, a, rule="authorization_lost", severity="critical", creator=None),
    ]
    theirs = open_incident(cfg, b, rule="raid_incoming", creator=0)
    viewer = Api(stack, a, "viewer")

    status, page = viewer("GET", "/api/incidents")
    assert status == 200
    mine = [i for i in page["items"] if i["id"] in {o["id"] for o in opened}]
    assert [i["number"] for i in mine] == sorted((o["number"] for o in opened), reverse=True)
    assert theirs["id"] not in json.dumps(page)
    first = mine[-1]
    assert set(first) >= {
        "id", "number", "creator_id", "rule", "severity", "status", "title", "details",
        "opened_at", "updated_at", "acknowledged_at", "acknowledged_by", "resolved_at",
        "resolved_by", "resolution", "assignee_user_id", "event_count",
    }  # fmt: skip
    assert (first["rule"], first["details"], first["event_count"]) == (
        "raid_incoming",
        {"viewers": 5000},
        0,
    )

    def numbers(query: str) -> set[int]:
        status, page = viewer("GET", f"/api/incidents?{query}")
        assert status == 200, (query, page)
        return {i["number"] for i in page["items"]}

    n = [o["number"] for o in opened]
    assert numbers("status=resolved") & set(n) == {n[3]}
    assert numbers("status=open&status=acknowledged") & set(n) == {n[0], n[1], n[2], n[4]}
    assert numbers("severity=critical") & set(n) == {n[1], n[4]}
    assert numbers("severity=info&status=open") & set(n) == {n[2]}
    assert numbers(f"creator_id={a.creators[1]}") & set(n) == {n[2], n[3]}
    assert numbers("rule=hate_raid") & set(n) == {n[1]}
    assert numbers(f"creator_id={b.creators[0]}") == set()  # B's creator: nothing, no error

    # paging: newest first, `before` a number, next_before until the end
    seen: list[int] = []
    query = "limit=2"
    while True:
        status, page = viewer("GET", f"/api/incidents?{query}")
        assert status == 200 and len(page["items"]) <= 2
        seen += [i["number"] for i in page["items"]]
        if page["next_before"] is None:
            break
        query = f"limit=2&before={page['next_before']}"
    assert seen == sorted(seen, reverse=True) and set(n) <= set(seen)
    assert len(seen) == len(set(seen))

    for bad in ("status=closed", "severity=huge", "limit=0", "limit=201", "before=0", "rule=X;"):
        assert viewer("GET", f"/api/incidents?{bad}")[0] == 422, bad


def test_detail_acknowledge_resolve_with_roles(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    incident = open_incident(cfg, a, rule="viewer_drop", creator=0)
    path = f"/api/incidents/{incident['id']}"
    viewer, operator = Api(stack, a, "viewer"), Api(stack, a, "operator")

    status, detail = viewer("GET", path)
    assert status == 200
    assert (detail["status"], detail["notes"], detail["events"], detail["deliveries"]) == (
        "open",
        [],
        [],
        [],
    )
    for method, suffix, body in (
        ("POST", "/acknowledge", None),
        ("POST", "/resolve", {}),
        ("PUT", "/assignee", {"user_id": str(a.users["operator"])}),
        ("POST", "/notes", {"body": "on it"}),
    ):
        status, answer = viewer(method, path + suffix, body)
        assert (status, answer["error"]) == (403, "forbidden"), suffix
    assert viewer("GET", path)[1]["status"] == "open"

    assert stack.endpoints is not None and stack.endpoints.relay_url
    feed, pushed = FeedClient(stack.endpoints.relay_url), []
    feed.client.on("incident", pushed.append)
    try:
        token = stack.keys.token(f"{a.name}-viewer", a.company, "viewer")
        assert feed.connect({"token": token})
        feed.wait_live()
        status, acked = operator("POST", path + "/acknowledge")
        assert status == 200
        assert (acked["status"], acked["acknowledged_by"]) == (
            "acknowledged",
            f"{a.name}-operator",
        )
        assert acked["acknowledged_at"] is not None
        # the company's open dashboards get the change
        assert wait_for(lambda: any(p["id"] == incident["id"] for p in pushed))
        assert [p["status"] for p in pushed if p["id"] == incident["id"]][-1] == "acknowledged"
    finally:
        feed.close()

    status, resolved = operator("POST", path + "/resolve", {"resolution": "raid was friendly"})
    assert status == 200
    assert (resolved["status"], resolved["resolution"], resolved["resolved_by"]) == (
        "resolved",
        "raid was friendly",
        f"{a.name}-operator",
    )
    # a resolved incident cannot be resolved or acknowledged again
    for suffix in ("/resolve", "/acknowledge"):
        status, answer = operator("POST", path + suffix, {} if suffix == "/resolve" else None)
        assert (status, answer["error"]) == (409, "conflict"), (suffix, answer)
    assert viewer("GET", path)[1]["resolution"] == "raid was friendly"

    status, audit = Api(stack, a, "admin")("GET", "/api/audit?limit=50")
    assert status == 200
    targets = [e for e in audit["items"] if e["target_id"] == incident["id"]]
    assert len(targets) >= 2  # acknowledged and resolved, each audited


def test_resolving_an_open_incident_directly(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    incident = open_incident(cfg, a, rule="gift_bomb", severity="info", creator=0)
    operator = Api(stack, a, "operator")
    status, resolved = operator("POST", f"/api/incidents/{incident['id']}/resolve", {})
    assert (status, resolved["status"], resolved["resolution"]) == (200, "resolved", None)
    assert operator("POST", f"/api/incidents/{incident['id']}/resolve", {})[0] == 409


def test_assignee_and_notes(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    incident = open_incident(cfg, a, rule="stream_dropped", creator=1)
    path = f"/api/incidents/{incident['id']}"
    operator, viewer = Api(stack, a, "operator"), Api(stack, a, "viewer")

    status, assigned = operator("PUT", path + "/assignee", {"user_id": str(a.users["admin"])})
    assert (status, assigned["assignee_user_id"]) == (200, str(a.users["admin"]))
    # a member of another company, or nobody at all, cannot be assigned
    for stranger in (b.users["admin"], uuid.uuid4()):
        status, answer = operator("PUT", path + "/assignee", {"user_id": str(stranger)})
        assert (status, answer["error"]) == (422, "invalid"), answer
        assert str(stranger) not in json.dumps(answer)
    assert viewer("GET", path)[1]["assignee_user_id"] == str(a.users["admin"])
    status, cleared = operator("PUT", path + "/assignee", {"user_id": None})
    assert (status, cleared["assignee_user_id"]) == (200, None)
    assert operator("PUT", path + "/assignee", {"user_id": "nope"})[0] == 422
    assert operator("PUT", path + "/assignee", {})[0] == 422

    assert operator("POST", path + "/notes", {"body": "called the creator"})[0] == 201
    assert operator("POST", path + "/notes", {"body": "back live"})[0] == 201
    for bad in ({"body": ""}, {"body": "x" * 2001}, {"body": "nul \x00"}, {"note": "x"}):
        assert operator("POST", path + "/notes", bad)[0] == 422, bad
    notes = viewer("GET", path)[1]["notes"]
    assert [n["body"] for n in notes] == ["called the creator", "back live"]
    assert {n["author_subject"] for n in notes} == {f"{a.name}-operator"}


def test_unknown_and_foreign_incidents_are_404(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    theirs = open_incident(cfg, b, rule="hype_train", severity="info", creator=1)
    owner = Api(stack, a, "owner")
    for incident in (theirs["id"], str(uuid.uuid4())):
        path = f"/api/incidents/{incident}"
        assert owner("GET", path)[0] == 404
        assert owner("POST", path + "/acknowledge")[0] == 404
        assert owner("POST", path + "/resolve", {})[0] == 404
        assert owner("PUT", path + "/assignee", {"user_id": None})[0] == 404
        assert owner("POST", path + "/notes", {"body": "mine"})[0] == 404
    assert owner("GET", "/api/incidents/not-a-uuid")[0] == 422
    status, detail = Api(stack, b, "viewer")("GET", f"/api/incidents/{theirs['id']}")
    assert (status, detail["status"], detail["notes"]) == (200, "open", [])


# --- detection rules -----------------------------------------------------------------------
def test_rules_show_defaults_and_only_admins_change_them(
    stack: LocalStack, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    viewer, operator, admin = (Api(stack, a, r) for r in ("viewer", "operator", "admin"))
    status, rules = viewer("GET", "/api/incident-rules")
    assert status == 200
    by_name = {r["rule"]: r for r in rules}
    assert {"went_live", "viewer_drop", "raid_incoming", "hate_raid", "authorization_lost"} <= set(
        by_name
    )
    drop = by_name["viewer_drop"]
    assert (drop["enabled"], drop["severity"]) == (True, "warning")
    assert drop["params"] == drop["defaults"]["params"]
    assert drop["params"]["drop_percent"] == 50
    assert {s["name"] for s in drop["param_specs"]} == set(drop["params"])
    assert by_name["went_live"]["enabled"] is False
    assert by_name["authorization_lost"]["params"] == {}

    change = {
        "enabled": True,
        "severity": "critical",
        "params": {**drop["params"], "drop_percent": 30},
    }
    assert viewer("PUT", "/api/incident-rules/viewer_drop", change)[0] == 403
    assert operator("PUT", "/api/incident-rules/viewer_drop", change)[0] == 403
    status, changed = admin("PUT", "/api/incident-rules/viewer_drop", change)
    assert status == 200, changed
    assert (changed["severity"], changed["params"]["drop_percent"]) == ("critical", 30)
    assert changed["defaults"]["params"]["drop_percent"] == 50
    again = {r["rule"]: r for r in viewer("GET", "/api/incident-rules")[1]}["viewer_drop"]
    assert again == changed
    # the other company still has the defaults
    theirs = {r["rule"]: r for r in Api(stack, b, "viewer")("GET", "/api/incident-rules")[1]}
    assert theirs["viewer_drop"]["params"]["drop_percent"] == 50

    spec = {s["name"]: s for s in drop["param_specs"]}["drop_percent"]
    for bad_params in (
        {"drop_percent": spec["maximum"] + 1},
        {"drop_percent": spec["minimum"] - 1},
        {"no_such_param": 1},
    ):
        body = {"enabled": True, "severity": "warning", "params": bad_params}
        status, answer = admin("PUT", "/api/incident-rules/viewer_drop", body)
        assert (status, answer["error"]) == (422, "invalid"), (bad_params, answer)
    for bad_body in (
        {"enabled": True, "severity": "fatal", "params": {}},
        {"enabled": "yes please", "severity": "info", "params": {}},
        {"enabled": True, "severity": "info", "params": {"drop_percent": "many"}},
        {"enabled": True, "severity": "info", "params": [], "extra": 1},
    ):
        assert admin("PUT", "/api/incident-rules/viewer_drop", bad_body)[0] == 422, bad_body
    status, answer = admin(
        "PUT",
        "/api/incident-rules/no_such_rule",
        {"enabled": True, "severity": "info", "params": {}},
    )
    assert (status, answer["error"]) == (404, "not_found")
    assert admin("PUT", "/api/incident-rules/Bad-Rule!", change)[0] in (404, 422)
    # refused changes changed nothing
    after = {r["rule"]: r for r in viewer("GET", "/api/incident-rules")[1]}["viewer_drop"]
    assert after == changed


# --- notification channels -----------------------------------------------------------------
def test_channels_never_show_their_url_and_log_deliveries(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    operator, admin = Api(stack, a, "operator"), Api(stack, a, "admin")
    body = {
        "kind": "discord",
        "name": "#alerts",
        "url": WEBHOOK_URL,
        "min_severity": "info",
        "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"},
        "mention": "123456789012345678",
        "enabled": True,
    }
    assert operator("POST", "/api/notification-channels", body)[0] == 403
    assert operator("GET", "/api/notification-channels")[0] == 403
    status, created = admin("POST", "/api/notification-channels", body)
    assert status == 201, created
    assert (created["kind"], created["name"], created["min_severity"]) == (
        "discord",
        "#alerts",
        "info",
    )
    assert created["quiet_hours"] == body["quiet_hours"]
    assert created["has_secret"] is False
    assert "url" not in created and "secret" not in created
    assert "very-secret-token" not in json.dumps(created)
    assert created["url_hint"] and created["url_hint"] != WEBHOOK_URL
    channel = created["id"]

    status, signed = admin(
        "POST",
        "/api/notification-channels",
        {
            "kind": "webhook",
            "name": "pager",
            "url": "https://hooks.example.com/incoming/abcdef123456",
            "secret": SIGNING_SECRET,
            "min_severity": "critical",
            "enabled": False,
        },
    )
    assert status == 201, signed
    assert (signed["has_secret"], signed["quiet_hours"], signed["mention"]) == (True, None, None)

    status, patched = admin(
        "PATCH",
        f"/api/notification-channels/{channel}",
        {"name": "#alerts-2", "quiet_hours": None, "min_severity": "warning"},
    )
    assert status == 200, patched
    assert (patched["name"], patched["quiet_hours"], patched["min_severity"]) == (
        "#alerts-2",
        None,
        "warning",
    )
    assert patched["mention"] == "123456789012345678"  # untouched: not in the patch

    for bad in (
        {**body, "kind": "email"},
        {**body, "name": ""},
        {**body, "name": "x" * 101},
        {**body, "url": "https://x.example/" + "a" * 500},
        {**body, "url": "not a url"},
        {**body, "quiet_hours": {"start": "25:00", "end": "07:00", "timezone": "UTC"}},
        {**body, "quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
        {**body, "mention": "@" * 101},
        {**body, "min_severity": "loud"},
        {**body, "surprise": True},
    ):
        status, answer = admin("POST", "/api/notification-channels", bad)
        assert status in (400, 422), (bad, status)
        assert answer["error"] in ("invalid", "bad_request")
    assert admin("PATCH", f"/api/notification-channels/{channel}", {"url": "ftp://x"})[0] == 422

    # the test post goes to a local endpoint, never to Discord; the new URL is hidden too
    with Recorder() as hook:
        status, moved = admin(
            "PATCH", f"/api/notification-channels/{channel}", {"url": f"{hook.url}/discord"}
        )
        assert status == 200 and "/discord" not in json.dumps(moved)
        status, test = admin("POST", f"/api/notification-channels/{channel}/test")
        assert status == 202, test
        assert (test["transition"], test["channel_id"], test["incident_id"]) == (
            "test",
            channel,
            None,
        )
        assert wait_for(lambda: len(hook.received) == 1, timeout=30)
    status, deliveries = admin("GET", f"/api/notification-channels/{channel}/deliveries")
    assert status == 200
    assert [d["transition"] for d in deliveries] == ["test"]
    assert deliveries[0]["channel_id"] == channel
    assert admin("GET", f"/api/notification-channels/{channel}/deliveries?limit=0")[0] == 422

    # never the URL or the secret, in any answer
    listed = admin("GET", "/api/notification-channels")
    assert listed[0] == 200 and {c["id"] for c in listed[1]} >= {channel, signed["id"]}
    dump = json.dumps([listed, deliveries, test, patched, created, signed])
    for secret in ("very-secret-token", "incoming/abcdef", SIGNING_SECRET[6:], WEBHOOK_URL):
        assert secret not in dump

    # another company's admin sees none of it and reaches none of it
    other = Api(stack, b, "admin")
    assert channel not in json.dumps(other("GET", "/api/notification-channels")[1])
    for method, suffix, payload in (
        ("PATCH", "", {"name": "stolen"}),
        ("POST", "/test", None),
        ("GET", "/deliveries", None),
        ("DELETE", "", None),
    ):
        assert other(method, f"/api/notification-channels/{channel}{suffix}", payload)[0] == 404

    assert admin("DELETE", f"/api/notification-channels/{channel}")[0] == 204
    assert admin("DELETE", f"/api/notification-channels/{channel}")[0] == 404
    assert admin("GET", f"/api/notification-channels/{channel}/deliveries")[0] == 404
    assert channel not in json.dumps(admin("GET", "/api/notification-channels")[1])


def test_an_acknowledgement_plans_a_delivery_per_matching_channel(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, _ = agencies
    admin = Api(stack, a, "admin")
    with Recorder() as hook:
        channels = {}
        for name, minimum in (("ops", "info"), ("execs", "critical")):
            status, channels[name] = admin(
                "POST",
                "/api/notification-channels",
                {"kind": "slack", "name": name, "url": f"{hook.url}/services/{name}",
                 "min_severity": minimum, "enabled": True},
            )  # fmt: skip
            assert status == 201, channels[name]
        incident = open_incident(cfg, a, rule="raid_incoming", severity="warning", creator=1)
        assert admin("POST", f"/api/incidents/{incident['id']}/acknowledge")[0] == 200
        status, detail = admin("GET", f"/api/incidents/{incident['id']}")
        assert status == 200
        planned = [(d["channel_name"], d["transition"]) for d in detail["deliveries"]]
        assert planned == [("ops", "acknowledged")]  # execs wants critical ones only
        ops, execs = (f"/api/notification-channels/{channels[n]['id']}" for n in ("ops", "execs"))
        status, log = admin("GET", f"{ops}/deliveries")
        assert status == 200 and [d["transition"] for d in log] == ["acknowledged"]
        assert log[0]["incident_id"] == incident["id"]
        assert admin("GET", f"{execs}/deliveries")[1] == []
        assert wait_for(lambda: [p for p, _, _ in hook.received] == ["/services/ops"], timeout=30)
        for path in (ops, execs):
            assert admin("DELETE", path)[0] == 204


# --- viewer samples and the creator JSON ---------------------------------------------------
def test_viewer_samples_and_creator_viewers(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    a, b = agencies
    now = sample_viewers(cfg, a)
    viewer = Api(stack, a, "viewer")
    status, answer = viewer("GET", "/api/viewers")
    assert status == 200
    assert answer["minutes"] == 60
    assert set(answer["creators"]) == {str(c) for c in a.creators}
    series = answer["creators"][str(a.creators[0])]
    stamp = int(now.timestamp())
    assert series == [[stamp - 180, 120], [stamp - 120, 150], [stamp - 60, None]]
    assert answer["creators"][str(a.creators[1])] == []
    status, day = viewer("GET", "/api/viewers?minutes=1440")
    assert status == 200 and len(day["creators"][str(a.creators[0])]) == 4
    for bad in ("0", "1441", "-5", "soon"):
        assert viewer("GET", f"/api/viewers?minutes={bad}")[0] == 422, bad
    # the other company sees its own creators only, with nothing sampled
    theirs = Api(stack, b, "viewer")("GET", "/api/viewers")[1]
    assert set(theirs["creators"]) == {str(c) for c in b.creators}
    assert all(s == [] for s in theirs["creators"].values())

    status, creator = viewer("GET", f"/api/creators/{a.creators[0]}")
    assert status == 200
    assert creator["viewers"] == 150
    assert datetime.fromisoformat(creator["viewers_at"]) == now - timedelta(minutes=2)
    listed = {c["id"]: c for c in viewer("GET", "/api/creators")[1]}
    assert (listed[str(a.creators[1])]["viewers"], listed[str(a.creators[1])]["viewers_at"]) == (
        None,
        None,
    )


def test_a_transition_and_a_test_post_reach_the_channel_once_each(
    stack: LocalStack, cfg: settings.DatabaseSettings, agencies: tuple[Agency, Agency]
) -> None:
    """Through the dispatcher the relay was given: Cloud Tasks, functions/notify, the POST."""
    a, _ = agencies
    admin = Api(stack, a, "admin")
    with Recorder() as hook:
        status, channel = admin(
            "POST",
            "/api/notification-channels",
            {"kind": "webhook", "name": "pager", "url": f"{hook.url}/hook",
             "min_severity": "critical", "enabled": True},
        )  # fmt: skip
        assert status == 201, channel
        incident = open_incident(cfg, a, rule="hate_raid", severity="critical", creator=1)
        assert admin("POST", f"/api/incidents/{incident['id']}/acknowledge")[0] == 200
        assert admin("POST", f"/api/notification-channels/{channel['id']}/test")[0] == 202
        assert wait_for(lambda: len(hook.received) >= 2, timeout=30), hook.received
        bodies = [body.decode() for _, _, body in hook.received]
        assert sum(incident["id"] in b for b in bodies) == 1
        assert wait_for(
            lambda: (
                {
                    (d["transition"], d["status"])
                    for d in admin("GET", f"/api/notification-channels/{channel['id']}/deliveries")[
                        1
                    ]
                }
                == {("acknowledged", "delivered"), ("test", "delivered")}
            ),
            timeout=15,
        )
    assert len(hook.received) == 2
    assert admin("DELETE", f"/api/notification-channels/{channel['id']}")[0] == 204
