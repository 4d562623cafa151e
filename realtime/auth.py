"""Sign-in and tokens (not under /api): OpenID Connect through Authlib (authorization code,
PKCE S256, state, nonce), our own access tokens, the rotating refresh cookie, the company
choice, sign-out, invitations accepted as the signed-in person, and the published keys."""

from __future__ import annotations

import html
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]
from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.middleware.sessions import SessionMiddleware

from controlroom import edge, errors
from controlroom.adapters.signing import Signer
from controlroom.core.identity import Person
from controlroom.errors import ForbiddenError, NotFoundError, UnauthorizedError
from controlroom.settings import AuthSettings
from controlroom.usecases import companies, identity, invitations
from realtime.middleware import origin_of
from realtime.schemas import error_response

log = logging.getLogger("realtime.auth")

REFRESH_COOKIE = "cr_refresh"
LOGIN_COOKIE = "cr_login"  # Authlib's state, nonce and PKCE verifier, signed, 10 minutes
LOGIN_SECONDS = 600
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "controlroom"
PROVIDER = "idp"
EMAIL_CLAIMS = json.dumps(
    {"id_token": {"email": None, "email_verified": None}, "userinfo": {"email": None}}
)

# the browser's protocol with the provider and its cookie, documented in docs/api.md; not
# in /api/openapi.json, whose typed JSON calls are the dashboard's generated client
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class SignIn:
    """What the sign-in routes read from the app's state."""

    cfg: AuthSettings
    signer: Signer | None
    oauth: Any  # Authlib's Starlette client for the OIDC issuer, or None
    origins: frozenset[str]  # where a browser may POST from: PUBLIC_URL and ALLOWED_ORIGINS


def install(
    api: FastAPI, cfg: AuthSettings, signer: Signer | None, allowed_origins: tuple[str, ...]
) -> None:
    """The sign-in routes, and the login-state cookie Authlib keeps its state in."""
    oauth = None
    if cfg.oidc is not None and cfg.session_secret is not None:
        registry = OAuth()
        registry.register(
            PROVIDER,
            client_id=cfg.oidc.client_id,
            client_secret=cfg.oidc.client_secret.reveal(),
            server_metadata_url=f"{cfg.oidc.issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": cfg.oidc.scopes, "code_challenge_method": "S256"},
        )
        oauth = registry.create_client(PROVIDER)
        api.add_middleware(
            SessionMiddleware,
            secret_key=cfg.session_secret.reveal(),
            session_cookie=LOGIN_COOKIE,
            max_age=LOGIN_SECONDS,
            path="/auth",
            same_site="lax",  # the IdP's redirect back is a cross-site navigation
            https_only=cfg.cookie_secure,
        )
    origins = frozenset({*allowed_origins, *([cfg.public_url] if cfg.public_url else [])})
    api.state.sign_in = SignIn(cfg, signer, oauth, origins)
    api.include_router(router)


def _state(request: Request) -> SignIn:
    found: SignIn = request.app.state.sign_in
    return found


def _page(status: int, title: str, text: str) -> HTMLResponse:
    """A small page for the browser's redirects (never a stack trace or the provider's words)."""
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        '<p><a href="/">Back to Creator Control Room</a></p>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def local_path(next_: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never `//host` or a scheme)."""
    if (
        not next_
        or not next_.startswith("/")
        or next_.startswith("//")
        or "\\" in next_
        or any(ord(c) < 0x20 for c in next_)
        or len(next_) > 500
    ):
        return "/"
    return next_


def _from_browser(request: Request) -> None:
    """The CSRF guard of cookie-authenticated calls, before the body is read: our header (a
    cross-site form cannot set it, and a cross-origin script needs a preflight we refuse) and,
    when sent, our Origin."""
    sign_in = _state(request)
    if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise ForbiddenError("missing X-Requested-With: controlroom")
    origin = request.headers.get("origin")
    if origin is not None and origin not in sign_in.origins:
        own = origin_of(str(request.base_url)).rstrip("/")
        if origin != own:
            raise ForbiddenError("cross-origin request refused")


def _set_refresh(response: Response, sign_in: SignIn, token: str) -> None:
    response.set_cookie(
        REFRESH_COOKIE,
        token,
        max_age=sign_in.cfg.refresh_ttl_seconds,
        path="/auth",
        secure=sign_in.cfg.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _clear_refresh(response: Response, sign_in: SignIn) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path="/auth",
        secure=sign_in.cfg.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _refused(exc: errors.ControlRoomError) -> JSONResponse:
    found = edge.answer(exc, log)
    return error_response(found.status, found.code, found.detail)


_BROWSER = Depends(_from_browser)


# --- keys and configuration ----------------------------------------------------------------
@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    """Our public signing keys (two during a rotation)."""
    signer = _state(request).signer
    if signer is None:
        raise NotFoundError("this service signs no tokens")
    return JSONResponse(signer.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/auth/config")
async def config(request: Request) -> dict[str, Any]:
    sign_in = _state(request)
    oidc = sign_in.cfg.oidc
    return {
        "provider_name": oidc.provider_name if oidc else None,
        "sign_in": sign_in.oauth is not None and sign_in.signer is not None,
        "dev_token_sign_in": sign_in.cfg.dev_token_sign_in,
    }


# --- the OpenID Connect redirects ----------------------------------------------------------
@router.get("/auth/login", response_class=RedirectResponse, status_code=302)
async def login(request: Request, next: str | None = None) -> Response:
    sign_in = _state(request)
    if sign_in.oauth is None or sign_in.cfg.public_url is None:
        return _page(404, "Sign-in is not configured", "Ask your administrator.")
    redirect_uri = f"{sign_in.cfg.public_url}/auth/callback"
    try:
        metadata = await sign_in.oauth.load_server_metadata()
        # OIDC Core 5.5: ask for the email claims where the provider takes the claims
        # parameter (Twitch puts them in the ID token only when asked)
        extra = {"claims": EMAIL_CLAIMS} if metadata.get("claims_parameter_supported") else {}
        found = await sign_in.oauth.create_authorization_url(redirect_uri, **extra)
    except Exception as exc:  # noqa: BLE001 - any provider failure is a page, never a 500
        log.warning(
            "identity provider unreachable", extra={"fields": {"error": type(exc).__name__}}
        )
        return _page(503, "Sign-in is unavailable", "The identity provider did not answer.")
    # Authlib keeps state, nonce and the PKCE verifier in the signed login cookie; only the
    # latest attempt's (repeated clicks would grow the cookie past what browsers keep)
    for key in [k for k in request.session if k.startswith("_state_")]:
        del request.session[key]
    await sign_in.oauth.save_authorize_data(
        request, redirect_uri=redirect_uri, next=local_path(next), **found
    )
    return RedirectResponse(found["url"], status_code=302, headers={"Cache-Control": "no-store"})


async def _exchange(request: Request, sign_in: SignIn) -> tuple[Person, str]:
    """The provider's answer → the person its validated ID token names, and where to go."""
    state = request.query_params.get("state")
    data = await sign_in.oauth.framework.get_state_data(request.session, state) if state else None
    # checks state (MismatchingStateError), swaps the code with the PKCE verifier, validates
    # the ID token's signature, iss, aud, exp and nonce
    token = await sign_in.oauth.authorize_access_token(request)
    claims = token.get("userinfo")
    assert sign_in.cfg.oidc is not None
    if not claims or not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise ValueError("no ID token")
    if str(claims.get("iss", "")).rstrip("/") != sign_in.cfg.oidc.issuer.rstrip("/"):
        raise ValueError("ID token from another issuer")
    verified = sign_in.cfg.oidc.trust_email or claims.get("email_verified") in (True, "true")
    name = claims.get("name") or claims.get("preferred_username")
    person = Person(
        issuer=sign_in.cfg.oidc.issuer,
        subject=claims["sub"][:255],
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        email_verified=verified,
        display_name=str(name)[:200] if name else None,
    )
    return person, local_path((data or {}).get("next"))


@router.get("/auth/callback", response_class=RedirectResponse, status_code=302)
async def callback(request: Request) -> Response:
    sign_in = _state(request)
    if sign_in.oauth is None or sign_in.signer is None:
        return _page(404, "Sign-in is not configured", "Ask your administrator.")
    if request.query_params.get("error") == "access_denied":
        return _page(400, "Sign-in cancelled", "Nothing was changed; sign in again when ready.")
    try:
        person, next_ = await _exchange(request, sign_in)
    except Exception as exc:  # noqa: BLE001 - a refused sign-in is a 400 page, nothing stored
        log.warning("sign-in refused", extra={"fields": {"error": type(exc).__name__}})
        return _page(400, "Sign-in failed", "The sign-in could not be completed. Try again.")
    async with request.app.state.pool.connection() as conn:
        previous = request.cookies.get(REFRESH_COOKIE)
        if previous:  # this browser's earlier sign-in ends here
            await identity.revoke(conn, previous, "signed in again")
        _session, token = await identity.start(conn, person, sign_in.cfg.refresh_ttl_seconds)
    response = RedirectResponse(next_, status_code=302, headers={"Cache-Control": "no-store"})
    _set_refresh(response, sign_in, token)
    return response


# --- the refresh cookie --------------------------------------------------------------------
class RefreshIn(BaseModel):
    company_id: uuid.UUID | None = None


class AcceptIn(BaseModel):
    company_id: uuid.UUID
    token: Annotated[str, Field(min_length=10, max_length=200)]


@router.post("/auth/refresh", dependencies=[_BROWSER])
async def refresh(request: Request, body: Annotated[RefreshIn | None, Body()] = None) -> Response:
    """A new access token for the chosen company, and the next refresh cookie."""
    sign_in = _state(request)
    if sign_in.signer is None:
        raise NotFoundError("this service signs no tokens")
    requested = body.company_id if body else None
    async with request.app.state.pool.connection() as conn:
        try:
            renewed = await identity.rotate(conn, request.cookies.get(REFRESH_COOKIE))
        except errors.AuthError as exc:
            response = _refused(UnauthorizedError(exc.detail))
            _clear_refresh(response, sign_in)
            return response
        session = renewed.session
        person = session.person
        found = await identity.memberships(conn, person.subject)
        try:
            chosen = identity.choose(found, requested, session.company_id)
        except errors.ControlRoomError as exc:
            # the presented token is used up: the refusal still carries its successor
            response = _refused(exc)
            _set_refresh(response, sign_in, renewed.refresh_token)
            return response
        if chosen is not None and chosen.company_id != session.company_id:
            await identity.remember(conn, session.id, chosen.company_id)
        operator = await companies.operator_for(conn, person)
    signer = sign_in.signer
    body_out = {
        "access_token": signer.access_token(
            person.subject, chosen.company_id, chosen.role, session.id
        )
        if chosen
        else None,
        "token_type": "Bearer",
        "expires_in": signer.access_ttl,
        "company": chosen.public() if chosen else None,
        "companies": [m.public(with_status=True) for m in found],
        "person": {
            "subject": person.subject,
            "email": person.email,
            "display_name": person.display_name,
        },
        "platform_operator": operator,
    }
    response = JSONResponse(body_out, headers={"Cache-Control": "no-store"})
    _set_refresh(response, sign_in, renewed.refresh_token)
    return response


@router.post("/auth/logout", status_code=204, response_class=Response, dependencies=[_BROWSER])
async def logout(request: Request) -> Response:
    """Sign-out: the session (every refresh token of its family) is revoked."""
    sign_in = _state(request)
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        async with request.app.state.pool.connection() as conn:
            await identity.revoke(conn, token)
    response = Response(status_code=204)
    _clear_refresh(response, sign_in)
    return response


async def _person(request: Request, conn: Any) -> identity.Session:
    try:
        return await identity.current(conn, request.cookies.get(REFRESH_COOKIE))
    except errors.AuthError as exc:
        raise UnauthorizedError(exc.detail) from None


# --- acting as the signed-in person --------------------------------------------------------
@router.post("/auth/invitations/accept", dependencies=[_BROWSER])
async def accept_invitation(request: Request, body: AcceptIn) -> dict[str, Any]:
    async with request.app.state.pool.connection() as conn:
        session = await _person(request, conn)
        company = await invitations.accept(conn, body.company_id, body.token, session.person)
    return {"company": company}


@router.get("/auth/invitations/preview")
async def preview_invitation(
    request: Request,
    company_id: uuid.UUID,
    token: Annotated[str, Query(min_length=10, max_length=200)],
) -> dict[str, Any]:
    async with request.app.state.pool.connection() as conn:
        return await invitations.preview(conn, company_id, token)


@router.post("/auth/platform-token", dependencies=[_BROWSER])
async def platform_token(request: Request) -> JSONResponse:
    sign_in = _state(request)
    if sign_in.signer is None:
        raise NotFoundError("this service signs no tokens")
    async with request.app.state.pool.connection() as conn:
        session = await _person(request, conn)
        person = session.person
        if not await companies.operator_for(conn, person) or person.email is None:
            raise ForbiddenError("not a platform operator")
    token = sign_in.signer.platform_token(person.subject, person.email, session.id)
    return JSONResponse(
        {"access_token": token, "expires_in": sign_in.signer.access_ttl},
        headers={"Cache-Control": "no-store"},
    )
