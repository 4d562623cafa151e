"""Creator consent over HTTP: the admin API that makes a connect link, and the small public
pages a creator goes through (`/connect` -> Twitch -> `/connect/callback`).

The pages are server-rendered, with one same-origin stylesheet and no script, so the
service's strict CSP holds. The OAuth state and PKCE verifier travel in a short-lived signed
cookie bound to the link (Path=/connect, HttpOnly, SameSite=Lax so Twitch's redirect back
carries it), which ties the answer to the browser that left; Redis holds each state once
(GETDEL), so a state is good for one callback whatever happens. The link itself is single use.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import redis.asyncio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer

from controlroom import edge, errors, settings
from controlroom.adapters import twitch_oauth
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.core import scopes
from controlroom.logs import fields
from controlroom.usecases import consent
from realtime.routes import _ERRORS, Conn, Who, _notify_roster
from realtime.schemas import ConnectLinkOut

log = logging.getLogger("realtime.consent")

router = APIRouter(prefix="/api", responses=_ERRORS)
pages = APIRouter(include_in_schema=False)

COOKIE = "cr_consent"
COOKIE_PATH = "/connect"
STATE_MAX_AGE = 600  # seconds between leaving for Twitch and coming back
_LINK = Annotated[str, Query(min_length=40, max_length=200)]


@dataclass(frozen=True)
class ConsentConfig:
    oauth: twitch_oauth.OAuthConfig
    public_url: str | None  # None: the request's own origin
    state_key: str  # signs the state cookie
    cookie_secure: bool
    link_ttl_days: int
    states: redis.asyncio.Redis[bytes]  # each state issued, until its one callback (or expiry)
    publish: Callable[[uuid.UUID, str, Any], None] | None = None  # to every relay's sockets


def config_from(
    cfg: settings.RealtimeSettings, states: redis.asyncio.Redis[bytes]
) -> ConsentConfig | None:
    """The consent's configuration, or None while Twitch's client is not configured."""
    if not (cfg.twitch_client_id and cfg.twitch_client_secret):
        return None
    state_secret = cfg.auth.session_secret or cfg.twitch_client_secret
    return ConsentConfig(
        oauth=twitch_oauth.OAuthConfig(
            cfg.twitch_client_id,
            cfg.twitch_client_secret,
            authorize_url=cfg.consent.authorize_url,
            token_url=cfg.twitch_token_url,
            validate_url=cfg.consent.validate_url,
        ),
        public_url=cfg.auth.public_url,
        state_key=state_secret.reveal(),
        cookie_secure=cfg.auth.cookie_secure,
        link_ttl_days=cfg.consent.link_ttl_days,
        states=states,
        publish=SocketIOPublisher(cfg.redis_url.reveal(), ca_cert=cfg.redis_ca_cert).publish,
    )


def _config(request: Request) -> ConsentConfig:
    found: ConsentConfig | None = getattr(request.app.state, "consent", None)
    if found is None:
        raise errors.UnavailableError("Twitch is not configured on this service")
    return found


def _public_url(request: Request, config: ConsentConfig) -> str:
    return config.public_url or str(request.base_url).rstrip("/")


def _state_key(state: str) -> str:
    return "consent:state:" + hashlib.sha256(state.encode()).hexdigest()


async def _issue(config: ConsentConfig, state: str, link: consent.Link) -> None:
    try:
        await config.states.set(_state_key(state), str(link.company), ex=STATE_MAX_AGE, nx=True)
    except redis.RedisError:
        raise errors.UnavailableError("try again shortly") from None


async def _spend(config: ConsentConfig, state: str) -> bool:
    """True once per issued state: the first callback that brings it takes it."""
    try:
        return await config.states.getdel(_state_key(state)) is not None
    except redis.RedisError:
        raise errors.UnavailableError("try again shortly") from None


def _serializer(config: ConsentConfig) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(config.state_key, salt="controlroom.consent-state")


# --- the admin API -------------------------------------------------------------------------
@router.post("/creators/{creator_id}/connect-link", response_model=ConnectLinkOut, status_code=201)
async def connect_link(
    creator_id: uuid.UUID, request: Request, conn: Conn, who: Who
) -> dict[str, Any]:
    config = _config(request)
    return await consent.create_link(
        conn,
        who,
        creator_id,
        public_url=_public_url(request, config),
        ttl_days=config.link_ttl_days,
    )


# --- the creator's pages -------------------------------------------------------------------
@pages.get("/connect/style.css")
async def stylesheet() -> Response:
    return Response(STYLE, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


@pages.get("/connect")
async def connect_page(request: Request, link: _LINK) -> HTMLResponse:
    try:
        _config(request)
        parsed = consent.Link.parse(link)
        async with request.app.state.pool.connection() as conn:
            opened = await consent.open_link(conn, parsed)
    except Exception as exc:  # noqa: BLE001 - every refusal is a page, through edge's table
        return _refusal(exc)
    wanted = scopes.labels(consent.CONSENT_TYPES)
    body = (
        f"<p class='eyebrow'>{_e(opened.company_name)}</p>"
        f"<h1>Connect {_e(opened.display_name)} with Twitch</h1>"
        f"<p>{_e(opened.company_name)} would like to show your channel's events on its control "
        f"room. Sign in to Twitch as <strong>{_e(opened.login)}</strong> and allow it to "
        "read:</p>"
        f"<ul class='topics'>{''.join(f'<li>{_e(w)}</li>' for w in wanted)}</ul>"
        "<p class='small'>Read access only: nothing is posted or changed on your channel. "
        "You can disconnect at any time from your Twitch settings (Connections).</p>"
        f"<p><a class='button' href='/connect/start?link={_e(link)}'>Connect with Twitch</a></p>"
        f"<p class='small'>This link works once and expires "
        f"{_e(opened.expires_at.strftime('%Y-%m-%d %H:%M UTC'))}.</p>"
    )
    return _page("Connect with Twitch", body)


@pages.get("/connect/start")
async def start(request: Request, link: _LINK) -> Response:
    try:
        config = _config(request)
        parsed = consent.Link.parse(link)
        async with request.app.state.pool.connection() as conn:
            await consent.open_link(conn, parsed)
    except Exception as exc:  # noqa: BLE001 - every refusal is a page
        return _refusal(exc)
    state, verifier = secrets.token_urlsafe(24), twitch_oauth.new_verifier()
    try:
        await _issue(config, state, parsed)
    except errors.UnavailableError as exc:
        return _refusal(exc)
    target = twitch_oauth.authorize_url(
        config.oauth,
        redirect_uri=f"{_public_url(request, config)}/connect/callback",
        state=state,
        verifier=verifier,
        scopes=scopes.requested(consent.CONSENT_TYPES),
    )
    response = RedirectResponse(target, status_code=303)
    cookie = _serializer(config).dumps({"link": str(parsed), "state": state, "verifier": verifier})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=STATE_MAX_AGE,
        path=COOKIE_PATH,
        secure=config.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@pages.get("/connect/callback")
async def callback(
    request: Request,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=500)] = "",
    error: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    try:
        response = await _complete(request, state, code, error)
    except Exception as exc:  # noqa: BLE001 - every refusal is a page
        response = _refusal(exc)
    # the state is spent whatever happened: a retry starts again from the link
    config: ConsentConfig | None = getattr(request.app.state, "consent", None)
    secure = config.cookie_secure if config else True
    response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=secure, httponly=True, samesite="lax")
    return response


async def _complete(request: Request, state: str, code: str, error: str) -> Response:
    config = _config(request)
    try:
        saved = _serializer(config).loads(request.cookies.get(COOKIE, ""), max_age=STATE_MAX_AGE)
    except BadSignature:
        raise errors.BadRequestError(
            "this sign-in is not the one started here, or it took too long; open your link again"
        ) from None
    if not (state and hmac.compare_digest(str(saved.get("state", "")), state)):
        raise errors.BadRequestError("the answer from Twitch does not match this sign-in")
    if not await _spend(config, state):
        raise errors.BadRequestError("this sign-in was already used; open your link again")
    if error:
        raise errors.BadRequestError("you did not authorize on Twitch; nothing was changed")
    if not code:
        raise errors.BadRequestError("Twitch sent no authorization code")
    link = consent.Link.parse(str(saved.get("link", "")))
    async with httpx.AsyncClient(timeout=10.0) as client:
        token = await twitch_oauth.exchange_code(
            client,
            config.oauth,
            code=code,
            verifier=str(saved.get("verifier", "")),
            redirect_uri=f"{_public_url(request, config)}/connect/callback",
        )
        info = await twitch_oauth.validate(client, config.oauth, token)
    del token  # never stored: Twitch keeps the grant, we keep what it covers
    async with request.app.state.pool.connection() as conn:
        done = await consent.complete(conn, link, info)
    await _notify_roster(request.app.state.roster_changed, "creator connected")
    await _push_state(config, link.company, done["state"])
    granted = "".join(f"<li>{_e(g)}</li>" for g in done["granted"]) or "<li>nothing</li>"
    missing = (
        "<p class='warn'>Not allowed, so not shown: "
        f"{_e(', '.join(done['missing']))}. Open a new link to allow them later.</p>"
        if done["missing"]
        else ""
    )
    body = (
        f"<p class='eyebrow'>{_e(done['company_name'])}</p>"
        f"<h1>{_e(done['display_name'])} is connected</h1>"
        f"<p>Thank you. {_e(done['company_name'])} can now see:</p>"
        f"<ul class='topics'>{granted}</ul>{missing}"
        "<p class='small'>You can close this tab.</p>"
    )
    return _page("Connected", body)


async def _push_state(config: ConsentConfig, company: uuid.UUID, state: dict[str, Any]) -> None:
    # open dashboards see the creator connected again now; the others read it from the API
    if config.publish is None:
        return
    try:
        await asyncio.to_thread(config.publish, company, "creator_state", state)
    except Exception as exc:  # noqa: BLE001 - recorded is what matters; dashboards poll too
        log.warning("creator state not pushed", extra=fields(error=type(exc).__name__))


# --- rendering -----------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)} · Creator Control Room</title>"
        "<link rel='icon' href='data:,'><link rel='stylesheet' href='/connect/style.css'>"
        "</head>"
        f"<body><main class='card'>{body}</main>"
        "<footer>Creator Control Room</footer></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers={"Cache-Control": "no-store"})


def _refusal(exc: BaseException) -> HTMLResponse:
    found = edge.answer(exc, log)  # the one table: 400, 403, 404, 410, 503 ...
    titles = {
        400: "This sign-in did not work",
        403: "Wrong Twitch account",
        404: "This link is not valid",
        410: "This link can no longer be used",
        503: "Please try again shortly",
    }
    title = titles.get(found.status, "Something went wrong")
    detail = found.detail or "Nothing was changed. Please try again."
    body = (
        f"<h1>{_e(title)}</h1><p>{_e(detail)}</p>"
        "<p class='small'>Nothing was changed. If this keeps happening, ask the agency that "
        "sent you the link for a new one.</p>"
    )
    return _page(title, body, found.status)


STYLE = """
:root { color-scheme: light dark; --accent: #6441a5; --fg: #1b1b1f; --bg: #f4f2f8;
  --card: #ffffff; --muted: #5d5b66; --warn: #8a4b00; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #ecebf0; --bg: #121116; --card: #1d1b24; --muted: #a9a6b4; --warn: #f0b45a; }
}
* { box-sizing: border-box; }
body { margin: 0; min-height: 100vh; display: flex; flex-direction: column; align-items: center;
  justify-content: center; gap: 1rem; padding: 1.5rem; background: var(--bg); color: var(--fg);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.card { width: 100%; max-width: 34rem; background: var(--card); border-radius: 12px;
  padding: 2rem; box-shadow: 0 4px 24px rgb(0 0 0 / 12%); }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 1rem; }
.eyebrow { margin: 0 0 .25rem; color: var(--muted); font-size: .85rem; text-transform: uppercase;
  letter-spacing: .06em; }
.topics { display: flex; flex-wrap: wrap; gap: .4rem; padding: 0; list-style: none; }
.topics li { padding: .2rem .65rem; border-radius: 999px; background: rgb(100 65 165 / 14%);
  font-size: .9rem; }
.button { display: inline-block; padding: .75rem 1.4rem; border-radius: 8px;
  background: var(--accent); color: #fff; font-weight: 600; text-decoration: none; }
.button:hover, .button:focus-visible { background: #503484;
  outline: 3px solid rgb(100 65 165 / 35%); }
.small { color: var(--muted); font-size: .85rem; }
.warn { color: var(--warn); }
footer { color: var(--muted); font-size: .8rem; }
"""
