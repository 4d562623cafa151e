"""A small Twitch Helix client: an app access token by client credentials, EventSub, users,
live streams (honoring Twitch's rate-limit headers). Image URLs Twitch answers with are kept
only when they are on the configured image origin (`trusted_image_url`)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controlroom.errors import HelixError, RetryLaterError, SubscriptionExistsError
from controlroom.settings import Secret


@dataclass(frozen=True)
class HelixConfig:
    client_id: str
    client_secret: Secret
    api_url: str = "https://api.twitch.tv/helix"
    token_url: str = "https://id.twitch.tv/oauth2/token"  # noqa: S105 - a URL, not a secret
    # where avatars and previews are served from; the dashboard's CSP allows it in img-src
    image_origin: str = "https://static-cdn.jtvnw.net"


# Get Streams takes at most 100 user_id parameters (and answers at most 100 streams).
STREAMS_PER_REQUEST = 100
# Get Users takes at most 100 id parameters.
USERS_PER_REQUEST = 100
MAX_IMAGE_URL = 2048
# The longest we wait for Twitch's rate-limit bucket to refill inside one call; longer, and
# the caller is told to come back later (a scheduled run is a minute apart).
MAX_RATE_LIMIT_WAIT = 10.0


class Helix:
    def __init__(
        self,
        config: HelixConfig,
        timeout: float = 10.0,
        *,
        max_rate_limit_wait: float = MAX_RATE_LIMIT_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.max_rate_limit_wait = max_rate_limit_wait
        self._sleep = sleep
        self._clock = clock  # epoch seconds, as Ratelimit-Reset is
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        self._rate_reset: float | None = None  # set while Twitch says the bucket is empty

    # --- the app access token, cached until shortly before it expires --------------------
    def _app_token(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh or self._token is None or time.monotonic() > self._token_expires:
                form = urllib.parse.urlencode(
                    {
                        "client_id": self.config.client_id,
                        "client_secret": self.config.client_secret.reveal(),
                        "grant_type": "client_credentials",
                    }
                ).encode()
                status, body = self._send(
                    "POST",
                    self.config.token_url,
                    form,
                    {"Content-Type": "application/x-www-form-urlencoded"},
                )
                if status != 200:
                    raise HelixError(status, "could not get an app access token")
                self._token = str(body["access_token"])
                self._token_expires = time.monotonic() + max(
                    60, int(body.get("expires_in", 3600)) - 60
                )
            return self._token

    def _send(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        status, _headers, body = self._exchange(method, url, data, headers)
        if status == 429 or status >= 500:
            raise RetryLaterError(status, "rate limited or unavailable")
        return status, body

    def _exchange(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], Any]:
        """One request: the status, the response headers and the JSON body (network errors
        become RetryLaterError; statuses are left to the caller)."""
        if not url.startswith(("https://", "http://")):
            raise ValueError("Helix URLs must be http(s)")
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
                status = int(response.status)
                answered = response.headers
        except urllib.error.HTTPError as exc:
            raw, status, answered = exc.read(), int(exc.code), exc.headers
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RetryLaterError(0, f"network: {type(exc).__name__}") from None
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        return status, {k.lower(): v for k, v in (answered or {}).items()}, body

    def _call(
        self, method: str, path: str, query: dict[str, str] | None = None, payload: Any = None
    ) -> tuple[int, Any]:
        url = f"{self.config.api_url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(payload).encode() if payload is not None else None
        for attempt in range(2):
            headers = {
                "Client-Id": self.config.client_id,
                "Authorization": f"Bearer {self._app_token(refresh=attempt > 0)}",
                "Content-Type": "application/json",
            }
            status, body = self._send(method, url, data, headers)
            if status != 401:
                return status, body
        raise HelixError(401, "the app access token was refused")

    # --- EventSub ----------------------------------------------------------------------
    def subscriptions(self) -> Iterator[dict[str, Any]]:
        """Every EventSub subscription of the app, following the pagination cursor."""
        cursor: str | None = None
        while True:
            status, body = self._call(
                "GET", "/eventsub/subscriptions", {"after": cursor} if cursor else None
            )
            if status != 200:
                raise HelixError(status, "could not list subscriptions")
            yield from body.get("data", [])
            cursor = (body.get("pagination") or {}).get("cursor")
            if not cursor:
                return

    def create_subscription(
        self, sub_type: str, version: str, condition: dict[str, str], callback: str, secret: str
    ) -> dict[str, Any]:
        payload = {
            "type": sub_type,
            "version": version,
            "condition": condition,
            "transport": {"method": "webhook", "callback": callback, "secret": secret},
        }
        status, body = self._call("POST", "/eventsub/subscriptions", payload=payload)
        if status == 409:
            raise SubscriptionExistsError(409, "subscription already exists")
        if status not in (200, 202):
            raise HelixError(status, str(body.get("message", "could not create a subscription")))
        data = body.get("data") or [{}]
        return dict(data[0])

    def delete_subscription(self, subscription_id: str) -> None:
        status, body = self._call("DELETE", "/eventsub/subscriptions", {"id": subscription_id})
        if status not in (204, 404):
            raise HelixError(status, str(body.get("message", "could not delete a subscription")))

    # --- users -------------------------------------------------------------------------
    def user_by_login(self, login: str) -> dict[str, Any] | None:
        """The user (Get Users by login), its profile_image_url kept only if trusted."""
        status, body = self._call("GET", "/users", {"login": login})
        if status != 200:
            raise HelixError(status, "could not look the user up")
        data = body.get("data") or []
        return self._user(data[0]) if data else None

    def users(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The users among `user_ids` (Get Users; unknown or suspended ones are absent), at
        most 100 ids a request, waiting for the rate-limit bucket as `streams` does."""
        wanted = list(dict.fromkeys(user_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), USERS_PER_REQUEST):
            query = [("id", u) for u in wanted[start : start + USERS_PER_REQUEST]]
            body = self._limited_get("/users", query)
            found.extend(self._user(u) for u in body.get("data") or [])
        return found

    def _user(self, user: Any) -> dict[str, Any]:
        found = dict(user)
        found["profile_image_url"] = trusted_image_url(
            found.get("profile_image_url"), self.config.image_origin
        )
        return found

    # --- streams -----------------------------------------------------------------------
    def streams(self, user_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The live streams among `user_ids` (Get Streams; offline broadcasters are absent),
        at most 100 ids a request, waiting for Twitch's rate-limit bucket when it is empty."""
        wanted = list(dict.fromkeys(user_ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), STREAMS_PER_REQUEST):
            chunk = wanted[start : start + STREAMS_PER_REQUEST]
            query = [("user_id", u) for u in chunk] + [("first", str(STREAMS_PER_REQUEST))]
            body = self._limited_get("/streams", query)
            for stream in body.get("data") or []:
                found.append(dict(stream))
                found[-1]["thumbnail_url"] = trusted_image_url(
                    stream.get("thumbnail_url"), self.config.image_origin, template=True
                )
        return found

    def _limited_get(self, path: str, query: list[tuple[str, str]]) -> Any:
        """A GET that honors Ratelimit-Remaining/Ratelimit-Reset: an empty bucket (or a 429
        saying when it refills) waits until the reset, if that is near, else RetryLaterError."""
        url = f"{self.config.api_url}{path}?{urllib.parse.urlencode(query)}"
        refreshed = limited = False
        while True:
            self._wait_for_bucket()
            headers = {
                "Client-Id": self.config.client_id,
                "Authorization": f"Bearer {self._app_token(refresh=refreshed)}",
            }
            status, answered, body = self._exchange("GET", url, None, headers)
            self._note_rate_limit(status, answered)
            if status == 401 and not refreshed:
                refreshed = True
                continue
            if status == 429 and not limited and self._rate_reset is not None:
                limited = True  # once: a second 429 after waiting means something else
                continue
            if status == 429 or status >= 500:
                raise RetryLaterError(status, "rate limited or unavailable")
            if status != 200:
                raise HelixError(status, str(body.get("message", f"could not GET {path}")))
            return body

    def _note_rate_limit(self, status: int, headers: Mapping[str, str]) -> None:
        remaining, reset = headers.get("ratelimit-remaining"), headers.get("ratelimit-reset")
        try:
            empty = status == 429 or (remaining is not None and int(remaining) <= 0)
            self._rate_reset = float(reset) if empty and reset is not None else None
        except ValueError:
            self._rate_reset = None

    def _wait_for_bucket(self) -> None:
        if self._rate_reset is None:
            return
        wait = self._rate_reset - self._clock()
        if wait > self.max_rate_limit_wait:
            raise RetryLaterError(429, f"Twitch's rate limit resets in {wait:.0f} s")
        if wait > 0:
            self._sleep(wait)
        self._rate_reset = None


_TEMPLATE_FIELDS = ("{width}", "{height}")


def trusted_image_url(url: object, origin: str, *, template: bool = False) -> str | None:
    """`url` if it is an image URL we will show, else None: on exactly `origin` (its scheme,
    host and port), https unless the origin itself is a loopback http stand-in, no
    credentials, no characters that could leave an attribute or a CSS url(), and short.
    With `template`, the literal {width} and {height} of Twitch's preview template may stay."""
    if not isinstance(url, str) or not url or len(url) > MAX_IMAGE_URL:
        return None
    checked = url
    if template:
        for name in _TEMPLATE_FIELDS:
            checked = checked.replace(name, "0")
    if any(c in checked for c in "{}<>\"'`() ") or any(
        ord(c) < 0x21 or ord(c) > 0x7E for c in checked
    ):
        return None
    try:
        parts, allowed = urllib.parse.urlsplit(checked), urllib.parse.urlsplit(origin)
        port, allowed_port = parts.port, allowed.port
    except ValueError:
        return None
    loopback_http = allowed.scheme == "http" and allowed.hostname in ("127.0.0.1", "localhost")
    if parts.scheme != "https" and not (loopback_http and parts.scheme == "http"):
        return None
    same_origin = (
        parts.scheme == allowed.scheme
        and parts.hostname == allowed.hostname
        and port == allowed_port
        and parts.username is None
        and parts.password is None
    )
    return url if same_origin and parts.path.startswith("/") else None
