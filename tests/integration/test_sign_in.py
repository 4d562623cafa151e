"""Sign-in on the real stack: the relay, the real OpenID Connect stand-in (oidc-provider-mock),
PostgreSQL. The redirects are driven with httpx; every attack is refused with its status and
leaves the sign-in tables as they were."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import itsdangerous
import jwt
import psycopg
import pytest

from controlroom import settings
from controlroom.adapters import db, signing
from controlroom.dev.stack import LocalStack
from controlroom.dev.stack.functions import RelayServer
from tests.integration.conftest import new_company
from tests.integration.relay_client import FeedClient

CSRF = {"X-Requested-With": "controlroom"}


@pytest.fixture(scope="module")
def relay(local_stack: LocalStack) -> Iterator[RelayServer]:
    # plain http on loopback: httpx (like any cookie jar) keeps Secure cookies for https only
    server = local_stack.start_relay(extra_env={"COOKIE_SECURE": "false"})
    local_stack.relays.remove(server)  # not one of the stack's shared relays
    yield server  # stopped with the stack


@pytest.fixture(scope="module")
def env(local_stack: LocalStack) -> dict[str, str]:
    assert local_stack.endpoints is not None
    return local_stack.endpoints.env()


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


def member_of(
    cfg: settings.DatabaseSettings, subject: str, role: str = "admin", name: str = "Sign-in Co"
) -> uuid.UUID:
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        with db.tenant_transaction(conn, company):
            user = conn.execute(
                "INSERT INTO users (company_id, subject, email) VALUES (%s, %s, %s) RETURNING id",
                (company, subject, f"{subject}@example.com"),
            ).fetchone()
            assert user is not None
            conn.execute(
                "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, %s)",
                (company, user["id"], role),
            )
    return company


@dataclass(frozen=True)
class Tables:
    sessions: int
    tokens: int
    revoked: int


def tables(cfg: settings.DatabaseSettings) -> Tables:
    """The sign-in tables, as the runtime role sees them (all rows: keyed by secret hashes)."""
    with db.connect(cfg) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM sign_in_sessions) AS sessions, "
            "(SELECT count(*) FROM refresh_tokens) AS tokens, "
            "(SELECT count(*) FROM sign_in_sessions WHERE revoked_at IS NOT NULL) AS revoked"
        ).fetchone()
    assert row is not None
    return Tables(row["sessions"], row["tokens"], row["revoked"])


def session_of(cfg: settings.DatabaseSettings, subject: str) -> dict[str, Any]:
    with db.connect(cfg) as conn:
        row = conn.execute(
            "SELECT * FROM sign_in_sessions WHERE subject = %s ORDER BY created_at DESC LIMIT 1",
            (subject,),
        ).fetchone()
    assert row is not None
    return dict(row)


@dataclass
class Flow:
    """One browser: its cookie jar on the relay, and where the provider sent it back."""

    browser: httpx.Client
    callback: str  # the relay's /auth/callback?code=...&state=...
    login_cookie: str


def start(relay: RelayServer, subject: str, *, next_: str = "/", verified: bool = True) -> Flow:
    """/auth/login → the provider's sign-in page, filled in → the callback URL (not yet used)."""
    browser = httpx.Client(base_url=relay.url, timeout=10)
    r = browser.get("/auth/login", params={"next": next_})
    assert r.status_code == 302, r.text
    authorize = r.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and query["response_type"] == ["code"]
    form = {
        "profile": "1",
        "sub": subject,
        "email": f"{subject}@example.com",
        "name": subject.title(),
        "action": "sign-in",
    }
    if verified:
        form["email_verified"] = "true"
    answer = httpx.post(authorize, data=form, timeout=10)
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{relay.url}/auth/callback?")
    return Flow(browser, callback, browser.cookies["cr_login"])


def sign_in(relay: RelayServer, subject: str, **kw: Any) -> httpx.Client:
    flow = start(relay, subject, **kw)
    r = flow.browser.get(flow.callback)
    assert r.status_code == 302, r.text
    assert "cr_refresh" in flow.browser.cookies
    return flow.browser


def refresh(browser: httpx.Client, company: uuid.UUID | None = None, **kw: Any) -> httpx.Response:
    body = {"company_id": str(company) if company else None}
    return browser.post("/auth/refresh", json=body, headers={**CSRF, **kw.pop("headers", {})})


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- the happy path ----------------------------------------------------------------------
def test_sign_in_gives_a_token_the_api_and_the_socket_accept(
    relay: RelayServer, cfg: settings.DatabaseSettings, local_stack: LocalStack
) -> None:
    company = member_of(cfg, "si-alice")
    browser = sign_in(relay, "si-alice", next_="/#creators")
    r = refresh(browser)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["company"]["id"] == str(company) and body["company"]["role"] == "admin"
    assert body["person"] == {
        "subject": "si-alice",
        "email": "si-alice@example.com",
        "display_name": "Si-Alice",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["platform_operator"] is False
    token = body["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "controlroom" and claims["company_id"] == str(company)
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(token)["kid"] == local_stack.keys.kid
    me = httpx.get(f"{relay.url}/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["subject"] == "si-alice"
    socket = FeedClient(relay.url)
    try:
        assert socket.connect({"token": token})
    finally:
        socket.close()
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/auth" in cookie


def test_the_jwks_lists_the_signing_key(relay: RelayServer, local_stack: LocalStack) -> None:
    keys = httpx.get(f"{relay.url}/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [local_stack.keys.kid]
    assert all("d" not in k and "p" not in k for k in keys)  # public halves only
    assert httpx.get(f"{relay.url}/auth/config").json() == {
        "provider_name": "the local identity provider",
        "sign_in": True,
        "dev_token_sign_in": False,
    }


def test_next_is_a_local_path_only(relay: RelayServer, cfg: settings.DatabaseSettings) -> None:
    member_of(cfg, "si-next")
    for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
        flow = start(relay, "si-next", next_=evil)
        r = flow.browser.get(flow.callback)
        assert r.status_code == 302 and r.headers["location"] == "/", evil


# --- the redirect attacks ----------------------------------------------------------------
def test_a_state_mismatch_is_refused(relay: RelayServer, cfg: settings.DatabaseSettings) -> None:
    flow = start(relay, "si-state")
    before = tables(cfg)
    r = flow.browser.get(with_query(flow.callback, state="forged-state-value"))
    assert r.status_code == 400 and "Sign-in failed" in r.text and "Traceback" not in r.text
    assert "cr_refresh" not in flow.browser.cookies
    assert tables(cfg) == before


def test_a_replayed_authorization_code_is_refused(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    flow = start(relay, "si-replay")
    assert flow.browser.get(flow.callback).status_code == 302  # the real sign-in
    before = tables(cfg)
    # an attacker with the same code and the same login cookie (state matches): the provider
    # has already spent the code
    thief = httpx.Client(cookies={"cr_login": flow.login_cookie}, timeout=10)
    r = thief.get(flow.callback)
    assert r.status_code == 400 and "cr_refresh" not in thief.cookies
    assert tables(cfg) == before


def _forged_login_cookie(cookie: str, secret: str, **changes: str) -> str:
    """The login cookie with its Authlib state data changed, re-signed with SESSION_SECRET
    (what an attacker holding the secret could do; the provider still checks PKCE)."""
    signer = itsdangerous.TimestampSigner(secret)
    data = json.loads(base64.b64decode(signer.unsign(cookie)))
    (key,) = [k for k in data if k.startswith("_state_")]
    data[key]["data"].update(changes)
    return signer.sign(base64.b64encode(json.dumps(data).encode())).decode()


def test_a_pkce_verifier_mismatch_is_refused_by_the_provider(
    relay: RelayServer, cfg: settings.DatabaseSettings, env: dict[str, str]
) -> None:
    flow = start(relay, "si-pkce")
    before = tables(cfg)
    forged = _forged_login_cookie(flow.login_cookie, env["SESSION_SECRET"], code_verifier="v" * 64)
    r = httpx.get(flow.callback, cookies={"cr_login": forged}, timeout=10)
    assert r.status_code == 400 and "cr_refresh" not in r.cookies
    assert tables(cfg) == before
    # the provider itself: the same code with a wrong verifier is invalid_grant
    code = parse_qs(urlsplit(flow.callback).query)["code"][0]
    token = httpx.post(
        f"{env['OIDC_ISSUER']}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{relay.url}/auth/callback",
            "code_verifier": "w" * 64,
        },
        auth=(env["OIDC_CLIENT_ID"], env["OIDC_CLIENT_SECRET"]),
    )
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"


def test_the_provider_requires_pkce_and_our_redirect_uri(env: dict[str, str]) -> None:
    base = {
        "client_id": env["OIDC_CLIENT_ID"],
        "response_type": "code",
        "scope": "openid email",
        "state": "s",
        "nonce": "n",
        "redirect_uri": "http://127.0.0.1:9/auth/callback",
    }
    no_pkce = httpx.get(f"{env['OIDC_ISSUER']}/oauth2/authorize", params=base)
    assert no_pkce.status_code == 302 and "error=invalid_request" in no_pkce.headers["location"]
    evil = httpx.get(
        f"{env['OIDC_ISSUER']}/oauth2/authorize",
        params={**base, "redirect_uri": "https://evil.example/auth/callback"},
    )
    assert evil.status_code == 400


# --- the refresh cookie ------------------------------------------------------------------
def test_refresh_token_reuse_revokes_the_family(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    member_of(cfg, "si-reuse")
    browser = sign_in(relay, "si-reuse")
    stolen = browser.cookies["cr_refresh"]
    assert refresh(browser).status_code == 200  # rotates: `stolen` is now used
    newer = browser.cookies["cr_refresh"]
    assert newer != stolen
    before = tables(cfg)
    thief = httpx.Client(base_url=relay.url, cookies={"cr_refresh": stolen}, timeout=10)
    r = refresh(thief)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert "access_token" not in r.text
    after = tables(cfg)
    assert after.tokens == before.tokens and after.revoked == before.revoked + 1
    assert session_of(cfg, "si-reuse")["revoked_reason"] == "refresh token reused"
    # the newer token of the family is dead too: the victim signs in again
    assert refresh(browser).status_code == 401
    assert tables(cfg) == after


@pytest.mark.parametrize("round_", range(8))
def test_concurrent_refreshes_of_one_token_let_one_through_then_revoke_the_family(
    relay: RelayServer, cfg: settings.DatabaseSettings, round_: int
) -> None:
    """Two tabs (or a tab and a thief) racing with the same refresh token: the row lock
    orders them, the first rotates, every later one is a reuse and revokes the family, so
    even the winner's new token is dead. Repeated: the interleaving differs each round."""
    subject = f"si-race-{round_}"
    member_of(cfg, subject)
    browser = sign_in(relay, subject)
    token = browser.cookies["cr_refresh"]
    racers = [
        httpx.Client(base_url=relay.url, cookies={"cr_refresh": token}, timeout=15)
        for _ in range(6)
    ]
    gate = threading.Barrier(len(racers))

    def race(client: httpx.Client) -> httpx.Response:
        gate.wait(10)
        return refresh(client)

    try:
        with ThreadPoolExecutor(len(racers)) as pool:
            answers = list(pool.map(race, racers))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200] + [401] * (len(racers) - 1), codes
        winner = next(c for c, a in zip(racers, answers, strict=True) if a.status_code == 200)
        assert session_of(cfg, subject)["revoked_reason"] == "refresh token reused"
        assert refresh(winner).status_code == 401  # the family is gone, the newest included
    finally:
        for client in racers:
            client.close()


def test_a_cross_origin_refresh_is_refused(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    member_of(cfg, "si-csrf")
    browser = sign_in(relay, "si-csrf")
    cookie = browser.cookies["cr_refresh"]
    before = tables(cfg)
    no_header = browser.post("/auth/refresh", json={})
    assert no_header.status_code == 403 and no_header.json()["error"] == "forbidden"
    foreign = refresh(browser, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    form_post = browser.post(
        "/auth/refresh", data={"company_id": ""}, headers={"Origin": "https://evil.example"}
    )
    assert form_post.status_code == 403
    assert tables(cfg) == before and browser.cookies["cr_refresh"] == cookie
    same_origin = refresh(browser, headers={"Origin": relay.url})
    assert same_origin.status_code == 200  # the cookie was never spent


def test_logout_revokes(relay: RelayServer, cfg: settings.DatabaseSettings) -> None:
    member_of(cfg, "si-logout")
    browser = sign_in(relay, "si-logout")
    cookie = browser.cookies["cr_refresh"]
    assert browser.post("/auth/logout").status_code == 403  # the CSRF header is required
    r = browser.post("/auth/logout", headers=CSRF)
    assert r.status_code == 204
    assert 'cr_refresh=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert session_of(cfg, "si-logout")["revoked_reason"] == "signed out"
    before = tables(cfg)
    replay = httpx.Client(base_url=relay.url, cookies={"cr_refresh": cookie}, timeout=10)
    assert refresh(replay).status_code == 401
    assert tables(cfg) == before


# --- tokens from elsewhere ---------------------------------------------------------------
def test_another_issuer_or_audience_is_refused_by_rest_and_socket(
    relay: RelayServer, cfg: settings.DatabaseSettings, local_stack: LocalStack
) -> None:
    company = member_of(cfg, "si-foreign")
    keys = signing.load_keys(local_stack.keys.private_pem.decode())  # even our own key
    ours = signing.Signer(keys, "https://controlroom.local/dev-idp")
    forged = {
        "another issuer": signing.Signer(keys, "https://elsewhere.example"),
        "another audience": signing.Signer(keys, ours.issuer, audience="another-app"),
    }
    valid = ours.access_token("si-foreign", company, "admin", uuid.uuid4())
    r = httpx.get(f"{relay.url}/api/me", headers={"Authorization": f"Bearer {valid}"})
    assert r.status_code == 200
    for name, signer in forged.items():
        token = signer.access_token("si-foreign", company, "admin", uuid.uuid4())
        r = httpx.get(f"{relay.url}/api/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.json()["detail"] == "token not for this service", name
        socket = FeedClient(relay.url)
        try:
            assert not socket.connect({"token": token}), name
            assert socket.refused == "token not for this service", name
        finally:
            socket.close()
    platform = ours.platform_token("si-foreign", "si-foreign@example.com", uuid.uuid4())
    r = httpx.get(f"{relay.url}/api/me", headers={"Authorization": f"Bearer {platform}"})
    assert r.status_code == 401  # a platform token is not a member's


# --- the company choice ------------------------------------------------------------------
def _set_status(cfg: settings.DatabaseSettings, company: uuid.UUID, status: str) -> None:
    with db.connect(cfg) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.platform', 'operator', true)")
        conn.execute(
            "UPDATE companies SET status = %s, status_changed_at = now(), "
            "delete_after = CASE WHEN %s = 'deleting' THEN now() + interval '30 days' END "
            "WHERE id = %s",
            (status, status, company),
        )


def test_several_companies_are_chosen_and_remembered(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    first = member_of(cfg, "si-multi", "owner", "Aardvark Agency")
    second = member_of(cfg, "si-multi", "viewer", "Zebra Agency")
    browser = sign_in(relay, "si-multi")
    r = refresh(browser)
    assert r.status_code == 200
    body = r.json()
    assert body["company"] is None and body["access_token"] is None
    assert [c["id"] for c in body["companies"]] == [str(first), str(second)]
    assert {c["status"] for c in body["companies"]} == {"active"}
    chosen = refresh(browser, second).json()
    assert chosen["company"]["id"] == str(second) and chosen["company"]["role"] == "viewer"
    assert jwt.decode(chosen["access_token"], options={"verify_signature": False})["role"] == (
        "viewer"
    )
    again = refresh(browser).json()  # the last choice, remembered
    assert again["company"]["id"] == str(second)
    stranger = member_of(cfg, "si-other-person")
    before = tables(cfg)
    r = refresh(browser, stranger)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    after = tables(cfg)
    assert after.sessions == before.sessions and after.revoked == before.revoked
    assert refresh(browser).status_code == 200  # the refusal carried the next cookie


def test_a_suspended_company_is_refused_at_refresh(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    company = member_of(cfg, "si-suspended")
    browser = sign_in(relay, "si-suspended")
    assert refresh(browser).json()["company"]["id"] == str(company)
    _set_status(cfg, company, "suspended")
    try:
        r = refresh(browser, company)
        assert r.status_code == 403 and r.json()["error"] == "suspended"
        fallback = refresh(browser).json()  # no usable company: no token
        assert fallback["company"] is None and fallback["access_token"] is None
        assert fallback["companies"][0]["status"] == "suspended"
    finally:
        _set_status(cfg, company, "active")


def test_an_unverified_email_is_not_kept(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    member_of(cfg, "si-unverified")
    browser = sign_in(relay, "si-unverified", verified=False)
    assert refresh(browser).json()["person"]["email"] is None
    assert session_of(cfg, "si-unverified")["email"] is None


def test_platform_token_needs_an_operator(
    relay: RelayServer, cfg: settings.DatabaseSettings, env: dict[str, str]
) -> None:
    member_of(cfg, "si-op")
    browser = sign_in(relay, "si-op")
    assert browser.post("/auth/platform-token", headers=CSRF).status_code == 403
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.platform', 'operator', true)")
        conn.execute(
            "INSERT INTO platform_operators (email, added_by) VALUES (%s, 'test') "
            "ON CONFLICT DO NOTHING",
            ("si-op@example.com",),
        )
    r = browser.post("/auth/platform-token", headers=CSRF)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "controlroom-platform" and claims["email"] == "si-op@example.com"
    assert "company_id" not in claims


# --- invitations, as the signed-in person ------------------------------------------------
def test_an_invitation_is_accepted_by_the_signed_in_invitee(
    relay: RelayServer, cfg: settings.DatabaseSettings, local_stack: LocalStack
) -> None:
    company = member_of(cfg, "si-inviter", "owner", "Inviting Agency")
    admin = local_stack.keys.token("si-inviter", company, "owner")
    created = httpx.post(
        f"{relay.url}/api/invitations",
        json={"email": "si-invitee@example.com", "role": "operator"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201, created.text
    company_id, _, token = created.json()["url"].split("#invite=")[1].partition(".")
    assert company_id == str(company)
    preview = httpx.get(
        f"{relay.url}/auth/invitations/preview", params={"company_id": company_id, "token": token}
    )
    assert preview.status_code == 200
    assert preview.json()["role"] == "operator" and preview.json()["status"] == "pending"

    def members() -> int:
        with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
            row = conn.execute("SELECT count(*) AS n FROM members").fetchone()
        assert row is not None
        return int(row["n"])

    body = {"company_id": company_id, "token": token}
    before = members()
    stranger = sign_in(relay, "si-not-invited")  # signed in, another email
    r = stranger.post("/auth/invitations/accept", json=body, headers=CSRF)
    assert r.status_code == 403 and members() == before
    unsigned = httpx.post(f"{relay.url}/auth/invitations/accept", json=body, headers=CSRF)
    assert unsigned.status_code == 401 and members() == before
    invitee = sign_in(relay, "si-invitee")
    assert invitee.post("/auth/invitations/accept", json=body).status_code == 403  # no header
    r = invitee.post("/auth/invitations/accept", json=body, headers=CSRF)
    assert r.status_code == 200, r.text
    assert r.json()["company"]["id"] == company_id and r.json()["company"]["role"] == "operator"
    assert members() == before + 1
    chosen = refresh(invitee, company).json()
    assert chosen["company"]["role"] == "operator" and chosen["access_token"]
    again = invitee.post("/auth/invitations/accept", json=body, headers=CSRF)
    assert again.status_code == 410 and members() == before + 1


def test_cancel_at_the_provider_stores_nothing(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    browser = httpx.Client(base_url=relay.url, timeout=10)
    authorize = browser.get("/auth/login").headers["location"]
    before = tables(cfg)
    denied = httpx.post(authorize, data={"action": "deny"}, timeout=10)
    assert denied.status_code == 302 and "error=access_denied" in denied.headers["location"]
    r = browser.get(denied.headers["location"])
    assert r.status_code == 400 and "Sign-in cancelled" in r.text
    assert "cr_refresh" not in browser.cookies and tables(cfg) == before


def test_signing_in_again_ends_the_browsers_earlier_session(
    relay: RelayServer, cfg: settings.DatabaseSettings
) -> None:
    member_of(cfg, "si-again")
    browser = sign_in(relay, "si-again")
    first = session_of(cfg, "si-again")["id"]
    flow = start(relay, "si-again")
    old = browser.cookies["cr_refresh"]
    flow.browser.cookies.set("cr_refresh", old, domain="127.0.0.1", path="/auth")
    assert flow.browser.get(flow.callback).status_code == 302
    with db.connect(cfg) as conn:
        row = conn.execute(
            "SELECT revoked_reason FROM sign_in_sessions WHERE id = %s", (first,)
        ).fetchone()
    assert row is not None and row["revoked_reason"] == "signed in again"
    assert refresh(flow.browser).status_code == 200
