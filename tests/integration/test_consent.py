"""Creator consent through the real relay and the Twitch stand-in: connect link, Twitch's
consent page, the callback's checks (state, code replay, PKCE, the right Twitch user, the
link's single use and expiry), the reconciler run it asks for, and revocation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from controlroom import settings
from controlroom.adapters import db
from controlroom.core import scopes
from controlroom.dev.stack import LocalStack
from controlroom.dev.twitchstub import user_id_for
from controlroom.usecases import consent
from tests.integration.conftest import new_company, services_stack
from tests.integration.listener import wait_for
from tests.integration.relay_client import FeedClient

ALL_SCOPES = scopes.requested(consent.CONSENT_TYPES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "consent") as running:
        yield running


@dataclass
class Agency:
    company: uuid.UUID
    token: str
    viewer_token: str
    cfg: settings.DatabaseSettings


@pytest.fixture(scope="module")
def agency(stack: LocalStack) -> Agency:
    assert stack.endpoints is not None
    cfg = settings.DatabaseSettings.from_env(stack.endpoints.env())
    with db.connect(cfg) as conn:
        company = new_company(conn, "Consenting")
        with db.tenant_transaction(conn, company):
            for subject, role in (("consent-admin", "admin"), ("consent-viewer", "viewer")):
                user = conn.execute(
                    "INSERT INTO users (company_id, subject) VALUES (%s, %s) RETURNING id",
                    (company, subject),
                ).fetchone()
                conn.execute(
                    "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
                    (company, user["id"], role),  # type: ignore[index]
                )
    return Agency(
        company,
        stack.keys.token("consent-admin", company, "admin"),
        stack.keys.token("consent-viewer", company, "viewer"),
        cfg,
    )


def add_creator(stack: LocalStack, agency: Agency, login: str) -> dict[str, Any]:
    answer = api(stack, agency.token).post(
        "/api/creators",
        json={"login": login, "twitch_user_id": user_id_for(login), "display_name": login},
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def api(stack: LocalStack, token: str) -> httpx.Client:
    assert stack.endpoints is not None and stack.endpoints.relay_url
    return httpx.Client(
        base_url=stack.endpoints.relay_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )


def connect_link(stack: LocalStack, agency: Agency, creator_id: str) -> str:
    answer = api(stack, agency.token).post(f"/api/creators/{creator_id}/connect-link")
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


@dataclass
class Started:
    """A consent on its way: the browser's state cookie and Twitch's authorize request."""

    cookie: str
    authorize: dict[str, str]


def start(link_url: str) -> Started:
    """What a browser does from the link to Twitch's consent page."""
    with httpx.Client(timeout=15) as browser:
        page = browser.get(link_url)
        assert page.status_code == 200, page.text
        assert "Connect with Twitch" in page.text
        parsed = urlsplit(link_url)
        begin = browser.get(f"{parsed.scheme}://{parsed.netloc}/connect/start?{parsed.query}")
        assert begin.status_code == 303
        cookie = begin.cookies.get("cr_consent")
        assert cookie
        target = begin.headers["location"]
        consent_page = browser.get(target)
        assert consent_page.status_code == 200
        assert "Authorize" in consent_page.text
    query = {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}
    return Started(cookie, query | {"_url": target.split("?")[0]})


def decide(started: Started, login: str, grant: list[str] | None = None, ok: bool = True) -> str:
    """Twitch's consent page answered: the URL Twitch sends the browser back to."""
    form: list[tuple[str, str]] = [
        (k, started.authorize[k])
        for k in (
            "client_id",
            "redirect_uri",
            "state",
            "scope",
            "code_challenge",
            "code_challenge_method",
        )
    ]
    form += [("login", login), ("decision", "authorize" if ok else "cancel")]
    form += [("grant", s) for s in (started.authorize["scope"].split() if grant is None else grant)]
    answer = httpx.post(
        started.authorize["_url"],
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=15,
    )
    assert answer.status_code == 302
    return answer.headers["location"]


def back(callback_url: str, cookie: str) -> httpx.Response:
    return httpx.get(callback_url, headers={"Cookie": f"cr_consent={cookie}"}, timeout=30)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=httpx.QueryParams(query).__str__()).geturl()


def grant_row(agency: Agency, broadcaster: str) -> dict[str, Any] | None:
    with db.connect(agency.cfg) as conn, db.tenant_transaction(conn, agency.company):
        row: dict[str, Any] | None = conn.execute(
            "SELECT scopes, granted_at, revoked_at FROM twitch_authorizations "
            "WHERE broadcaster_user_id = %s",
            (broadcaster,),
        ).fetchone()
    return row


def links_used(agency: Agency, creator_id: str) -> list[bool]:
    with db.connect(agency.cfg) as conn, db.tenant_transaction(conn, agency.company):
        rows = conn.execute(
            "SELECT used_at IS NOT NULL AS used FROM creator_connect_links WHERE creator_id = %s",
            (creator_id,),
        ).fetchall()
    return [r["used"] for r in rows]


def audited(agency: Agency, action: str, creator_id: str) -> int:
    with db.connect(agency.cfg) as conn, db.tenant_transaction(conn, agency.company):
        row = conn.execute(
            "SELECT count(*) AS n FROM audit_logs WHERE action = %s AND target_id = %s",
            (action, creator_id),
        ).fetchone()
    assert row is not None
    return int(row["n"])


def creator(stack: LocalStack, agency: Agency, creator_id: str) -> dict[str, Any]:
    answer = api(stack, agency.viewer_token).get(f"/api/creators/{creator_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_creator_connects_and_the_subscriptions_follow(stack: LocalStack, agency: Agency) -> None:
    made = add_creator(stack, agency, "consent_star")
    assert made["authorization"]["status"] == "not_connected"
    url = connect_link(stack, agency, made["id"])
    assert url.startswith(f"{stack.endpoints.relay_url}/connect?link=")  # type: ignore[union-attr]
    assert audited(agency, "creator.connect_link", made["id"]) == 1

    started = start(url)
    assert started.authorize["code_challenge_method"] == "S256"
    assert started.authorize["scope"].split() == ALL_SCOPES
    assert started.authorize["state"]
    done = back(decide(started, "consent_star"), started.cookie)
    assert done.status_code == 200, done.text
    assert "is connected" in done.text
    assert "cr_consent=" in done.headers.get("set-cookie", "")  # the state is cleared

    row = grant_row(agency, made["twitch_user_id"])
    assert row is not None and sorted(row["scopes"]) == ALL_SCOPES and row["granted_at"]
    assert links_used(agency, made["id"]) == [True]
    assert audited(agency, "creator.connect", made["id"]) == 1

    # the callback asked the reconciler to run (Cloud Tasks -> functions/subscriptions)
    def healthy() -> bool:
        shown = creator(stack, agency, made["id"])
        subs = shown["subscriptions"]
        return bool(
            shown["authorization"]["status"] == "connected"
            and "follows" in subs["enabled"]
            and "bits" in subs["enabled"]
            and not subs["needs_authorization"]
            and not subs["failing"]
        )

    assert wait_for(healthy, timeout=60, interval=0.5), creator(stack, agency, made["id"])
    listed = api(stack, agency.viewer_token).get("/api/creators").json()
    mine = next(c for c in listed if c["id"] == made["id"])
    assert mine["authorization"]["scopes"] == ALL_SCOPES

    # the link was single use
    again = httpx.get(url, timeout=15)
    assert again.status_code == 410
    assert "Nothing was changed" in again.text


def test_partial_consent_names_what_needs_authorization(stack: LocalStack, agency: Agency) -> None:
    made = add_creator(stack, agency, "consent_partial")
    started = start(connect_link(stack, agency, made["id"]))
    granted = ["moderator:read:followers", "channel:read:polls"]
    done = back(decide(started, "consent_partial", grant=granted), started.cookie)
    assert done.status_code == 200, done.text
    assert "Not allowed" in done.text

    def labelled() -> bool:
        shown = creator(stack, agency, made["id"])
        subs = shown["subscriptions"]
        return bool(
            shown["authorization"]["status"] == "partial"
            and {"subscriptions", "bits", "hype trains"} <= set(subs["needs_authorization"])
            and {"follows", "polls", "live status"} <= set(subs["enabled"])
        )

    assert wait_for(labelled, timeout=60, interval=0.5), creator(stack, agency, made["id"])


def test_refused_callbacks_store_nothing(stack: LocalStack, agency: Agency) -> None:
    made = add_creator(stack, agency, "consent_guarded")
    url = connect_link(stack, agency, made["id"])

    # a state that is not the one this browser started with
    started = start(url)
    callback = decide(started, "consent_guarded")
    forged = back(with_query(callback, state="not-the-state"), started.cookie)
    assert forged.status_code == 400
    # no cookie at all (another browser)
    cookieless = httpx.get(callback, timeout=15)
    assert cookieless.status_code == 400

    # a PKCE verifier that does not match: a cookie from another start, its own state
    first, second = start(url), start(url)
    mixed = with_query(decide(first, "consent_guarded"), state=second.authorize["state"])
    assert back(mixed, second.cookie).status_code == 400

    # a consent token for a different Twitch user
    other = start(url)
    wrong = back(decide(other, "someone_else"), other.cookie)
    assert wrong.status_code == 403
    assert "someone_else" in wrong.text
    # a state is good for one callback: even a right answer under the spent state is refused
    reused = back(decide(other, "consent_guarded"), other.cookie)
    assert reused.status_code == 400
    assert "already used" in reused.text

    # cancelled on Twitch
    cancelled = start(url)
    assert back(decide(cancelled, "consent_guarded", ok=False), cancelled.cookie).status_code == 400

    assert grant_row(agency, made["twitch_user_id"]) is None
    assert links_used(agency, made["id"]) == [False]
    assert audited(agency, "creator.connect", made["id"]) == 0
    assert creator(stack, agency, made["id"])["authorization"]["status"] == "not_connected"

    # and a code is good once: the first use connects, a replay is refused
    good = start(url)
    callback = decide(good, "consent_guarded")
    assert back(callback, good.cookie).status_code == 200
    replay = back(callback, good.cookie)
    assert replay.status_code in (400, 410)
    assert audited(agency, "creator.connect", made["id"]) == 1


def test_a_replayed_code_is_refused_by_twitch(stack: LocalStack, agency: Agency) -> None:
    made = add_creator(stack, agency, "consent_replay")
    url = connect_link(stack, agency, made["id"])
    started = start(url)
    callback = decide(started, "consent_replay")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    # someone else redeems the code first (as an interception would): our exchange then fails
    twitch = stack.twitch
    stolen = httpx.post(
        f"{twitch.url}/oauth2/token",
        data={
            "client_id": twitch.client_id,
            "client_secret": twitch.client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": started.authorize["redirect_uri"],
        },
        timeout=15,
    )
    assert stolen.status_code == 400  # no verifier: PKCE refuses, and the code is spent
    assert back(callback, started.cookie).status_code == 400
    assert grant_row(agency, made["twitch_user_id"]) is None
    assert links_used(agency, made["id"]) == [False]


def test_used_and_expired_links_and_roles(stack: LocalStack, agency: Agency) -> None:
    made = add_creator(stack, agency, "consent_expired")
    # viewers may not make links
    refused = api(stack, agency.viewer_token).post(f"/api/creators/{made['id']}/connect-link")
    assert refused.status_code == 403
    missing = api(stack, agency.token).post(f"/api/creators/{uuid.uuid4()}/connect-link")
    assert missing.status_code == 404

    url = connect_link(stack, agency, made["id"])
    started = start(url)
    with db.connect(agency.cfg) as conn, db.tenant_transaction(conn, agency.company):
        conn.execute(
            "UPDATE creator_connect_links SET expires_at = now() - interval '1 minute' "
            "WHERE creator_id = %s",
            (made["id"],),
        )
    assert httpx.get(url, timeout=15).status_code == 410
    done = back(decide(started, "consent_expired"), started.cookie)
    assert done.status_code == 410
    assert grant_row(agency, made["twitch_user_id"]) is None
    bogus = url.split("link=")[0] + f"link={agency.company}.{'x' * 43}"
    assert httpx.get(bogus, timeout=15).status_code == 404


def test_revocation_disconnects_everywhere_and_a_new_consent_reconnects(
    stack: LocalStack, agency: Agency
) -> None:
    made = add_creator(stack, agency, "consent_revoked")
    # another agency watches the same broadcaster: the grant and its revocation are Twitch's
    other = Agency(new_agency(agency.cfg, "Also watching"), "", "", agency.cfg)
    other.viewer_token = stack.keys.token("also-viewer", other.company, "viewer")
    with db.connect(agency.cfg) as conn, db.tenant_transaction(conn, other.company):
        user = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'also-viewer') RETURNING id",
            (other.company,),
        ).fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (other.company, user["id"]),
        )
        theirs = conn.execute(
            "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
            "VALUES (%s, %s, 'consent_revoked', 'Theirs') RETURNING id",
            (other.company, made["twitch_user_id"]),
        ).fetchone()
        assert theirs is not None
    their_id = str(theirs["id"])

    started = start(connect_link(stack, agency, made["id"]))
    assert back(decide(started, "consent_revoked"), started.cookie).status_code == 200
    assert creator(stack, other, their_id)["authorization"]["status"] == "connected"

    def status(who: Agency, creator_id: str) -> str:
        return str(creator(stack, who, creator_id)["authorization"]["status"])

    def enabled(who: Agency, creator_id: str) -> list[str]:
        return list(creator(stack, who, creator_id)["subscriptions"]["enabled"])

    # the app's user.authorization.revoke subscription exists once the reconciler ran
    assert wait_for(lambda: "follows" in enabled(agency, made["id"]), timeout=60, interval=0.5)
    revoked = httpx.post(
        f"{stack.twitch.url}/_stub/revoke", params={"user_id": made["twitch_user_id"]}, timeout=30
    )
    assert revoked.status_code == 200 and revoked.json()["notified"] >= 1
    assert wait_for(lambda: status(agency, made["id"]) == "disconnected", timeout=30, interval=0.3)
    assert status(other, their_id) == "disconnected"
    row = grant_row(agency, made["twitch_user_id"])
    assert row is not None and row["revoked_at"] > row["granted_at"]
    shown = creator(stack, agency, made["id"])
    assert shown["authorization_revoked"] is True
    assert shown["authorization"]["revoked_at"] is not None

    # Twitch revoked the subscriptions that needed the grant; the rest go on
    def revoked_subs() -> bool:
        subs = creator(stack, agency, made["id"])["subscriptions"]
        return "follows" in subs["needs_authorization"] and "live status" in subs["enabled"]

    assert wait_for(revoked_subs, timeout=30, interval=0.3), creator(stack, agency, made["id"])

    # a new consent wins over the older revocation, for every company watching; an open
    # dashboard of the consenting company hears it at once
    assert stack.endpoints is not None and stack.endpoints.relay_url
    feed = FeedClient(stack.endpoints.relay_url)
    try:
        assert feed.connect({"token": agency.token})
        feed.wait_live()
        again = start(connect_link(stack, agency, made["id"]))
        assert back(decide(again, "consent_revoked"), again.cookie).status_code == 200

        def pushed() -> bool:
            return any(
                s["creator_id"] == made["id"] and s["authorization_revoked"] is False
                for s in feed.states
            )

        assert wait_for(pushed, timeout=15)
    finally:
        feed.close()
    assert status(agency, made["id"]) == "connected"
    assert creator(stack, agency, made["id"])["authorization_revoked"] is False
    assert status(other, their_id) == "connected"
    assert creator(stack, other, their_id)["authorization_revoked"] is False
    # and the reconciler the consent asked for subscribes again
    assert wait_for(lambda: "follows" in enabled(other, their_id), timeout=60, interval=0.5)


def new_agency(cfg: settings.DatabaseSettings, name: str) -> uuid.UUID:
    with db.connect(cfg) as conn:
        return new_company(conn, name)
