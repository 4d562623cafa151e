"""The identity provider's stand-in: oidc-provider-mock (an OpenID Connect provider built on
Authlib) on 127.0.0.1, with our client registered, PKCE (S256) required and a sign-in page
where you type who you are (subject, email, whether it is verified, name).

Run by the local stack as `python -m controlroom.dev.stack.idp --port N` with
IDP_CLIENT_ID and IDP_CLIENT_SECRET in the environment.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from controlroom.dev.stack.process import StandIn

REDIRECT_PATH = "/auth/callback"

_FORM = """<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Sign in: local identity provider</title>
<style>
 body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}
 label{display:block;margin:.6rem 0 .2rem}input[type=text],input[type=email]{width:100%;
 padding:.4rem;font-size:1rem}button{margin-top:1rem;padding:.5rem 1rem;font-size:1rem}
 .note{color:#555;font-size:.9rem}
</style>
<h1>Local identity provider</h1>
<p class="note">The local stack's stand-in for Google, Auth0, Entra ID... Type who you are;
nothing is checked. Client: <code>{{ client_id }}</code></p>
<form method="post">
  <input type="hidden" name="profile" value="1">
  <label for="sub">Subject (your stable id)</label>
  <input type="text" id="sub" name="sub" required autofocus placeholder="alice"
    {% if sub_missing %}aria-invalid="true"{% endif %}>
  <label for="email">Email</label>
  <input type="email" id="email" name="email" placeholder="alice@example.com">
  <label><input type="checkbox" name="email_verified" value="true" checked>
    The provider vouches for this email (email_verified)</label>
  <label for="name">Name</label>
  <input type="text" id="name" name="name" placeholder="Alice Example">
  <button type="submit" name="action" value="sign-in">Sign in</button>
  <button type="submit" name="action" value="deny" formnovalidate>Cancel</button>
</form>
{% if recent_subjects or predefined_users %}
<h2>Sign in again as</h2>
<form method="post">
{% for sub in (predefined_users|list) + (recent_subjects|list) %}
  <button type="submit" name="sub" value="{{ sub }}">{{ sub }}</button>
{% endfor %}
</form>
{% endif %}
<p class="note">You will be sent back to {{ redirect_uri }}</p>
</html>
"""


def _loopback_callback(uri: str) -> bool:
    """RFC 8252 §7.3: a loopback redirect URI matches on any port (the stack picks ports)."""
    parts = urlsplit(uri)
    return (
        parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and parts.path == REDIRECT_PATH
        and not parts.query
        and not parts.fragment
    )


def build_app(client_id: str, client_secret: str) -> Any:
    """The provider's Flask app with our client registered and PKCE S256 required."""
    import flask
    import jinja2
    from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
        InvalidRequestError,
    )
    from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]
    from oidc_provider_mock import _app as mock  # type: ignore[import-untyped]
    from oidc_provider_mock._storage import Client, User  # type: ignore[import-untyped]

    @dataclass(kw_only=True, frozen=True)
    class LocalClient(Client):  # type: ignore[misc]
        def check_redirect_uri(self, redirect_uri: str) -> bool:
            return _loopback_callback(redirect_uri)

    challenges: dict[str, tuple[str, str]] = {}

    class Grant(mock.AuthorizationCodeGrant):  # type: ignore[misc]
        def save_authorization_code(self, code: str, request: Any) -> None:
            super().save_authorization_code(code, request)
            data = request.payload.data
            challenges[code] = (data.get("code_challenge"), data.get("code_challenge_method"))

    class RequiredPkce(CodeChallenge):  # type: ignore[misc]
        def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
            data = grant.request.payload.data
            if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
                raise InvalidRequestError("PKCE with S256 is required")
            super().validate_code_challenge(grant, redirect_uri)

        def get_authorization_code_challenge(self, code: Any) -> str | None:
            return challenges.get(code.code, (None, None))[0]

        def get_authorization_code_challenge_method(self, code: Any) -> str | None:
            return challenges.get(code.code, (None, None))[1]

    app = mock.app(require_client_registration=True, require_nonce=True)
    # the package serves Werkzeug's interactive debugger on errors: not on our stack
    app.debug = False
    app.wsgi_app = getattr(app.wsgi_app, "app", app.wsgi_app)
    app.jinja_loader = jinja2.DictLoader({"authorization_form.html": _FORM})

    with app.test_request_context("/"):
        app.preprocess_request()  # the blueprint's hook puts its storage and server on g
        mock.storage.store_client(
            LocalClient(
                id=client_id,
                secret=client_secret,
                redirect_uris=[f"http://127.0.0.1{REDIRECT_PATH}"],
                allowed_scopes=Client.SCOPES_SUPPORTED,
                token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            )
        )
        server = flask.g._authlib_authorization_server
        for grants in (server._authorization_grants, server._token_grants):
            for i, (grant_cls, extensions) in enumerate(grants):
                if grant_cls is mock.AuthorizationCodeGrant:
                    grants[i] = (Grant, [*(extensions or []), RequiredPkce(required=True)])

    def typed_profile() -> None:
        """The sign-in form's claims become the user's (the package's own form has `sub` only)."""
        request = flask.request
        form = request.form if request.method == "POST" else {}
        if request.path != "/oauth2/authorize" or not form.get("profile") or not form.get("sub"):
            return
        sub = form["sub"].strip()
        email = (form.get("email") or "").strip() or (sub if "@" in sub else "")
        claims: dict[str, object] = {"email_verified": form.get("email_verified") == "true"}
        if email:
            claims["email"] = email
        if (form.get("name") or "").strip():
            claims["name"] = form["name"].strip()
        mock.storage.store_user(User(sub=sub, claims=claims))

    app.before_request(typed_profile)
    return app


def main(argv: list[str] | None = None) -> int:
    import werkzeug.serving

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # plain http on loopback only
    app = build_app(os.environ["IDP_CLIENT_ID"], os.environ["IDP_CLIENT_SECRET"])
    server = werkzeug.serving.make_server("127.0.0.1", args.port, app, threaded=True)
    sys.stdout.write(f"identity provider on http://127.0.0.1:{args.port}\n")
    server.serve_forever()
    return 0


class OidcProvider(StandIn):
    """The OpenID Connect provider's stand-in (this module, as its own process)."""

    name = "oidc"

    def __init__(self, log_dir: Path, port: int, client_id: str, client_secret: str) -> None:
        super().__init__(log_dir, port)
        self.client_id = client_id
        self.client_secret = client_secret

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str] | None]:
        argv = [sys.executable, "-m", "controlroom.dev.stack.idp", "--port", str(self.port)]
        env = {
            **os.environ,
            "IDP_CLIENT_ID": self.client_id,
            "IDP_CLIENT_SECRET": self.client_secret,
        }
        return argv, env


if __name__ == "__main__":
    sys.exit(main())
