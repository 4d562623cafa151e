"""Rate limits: token buckets per key (a client IP, a subject), through throttled-py.

A `Limiter` is one rule (a `settings.Rate`) over many keys: `check(key)` takes a token and
says whether the caller may go on and, if not, in how many whole seconds to retry;
`peek(key)` says the same without taking one (the webhook asks before any HMAC work).
Buckets live in Redis, so every instance of a service shares them; without a Redis URL
(the webhook may run without one) each instance keeps its own in memory.

When the store fails, the limiter lets the request through and logs a warning: a Redis
outage must not take the product down with it. It then leaves the store alone for a few
seconds, so a dead Redis does not add its timeout to every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import throttled
import throttled.asyncio
from throttled import RateLimiterType
from throttled.exceptions import BaseThrottledError

from controlroom.adapters import redis_tls
from controlroom.logs import fields
from controlroom.settings import Rate, RateLimitSettings

log = logging.getLogger(__name__)

KEY_PREFIX = "controlroom-rl"
# Redis is local to the region: a store that takes longer than this is treated as down
STORE_TIMEOUT_SECONDS = 0.5
# after a store failure, requests pass without asking the store for this long
PAUSE_SECONDS = 5.0
# the webhook remembers a key's "allowed" peek this long (see SyncLimiter)
PEEK_CACHE_SECONDS = 1.0
PEEK_CACHE_KEYS = 10_000

Clock = Callable[[], float]


@dataclass(frozen=True)
class Decision:
    """`allowed`, or refused with `retry_after` whole seconds (at least 1) to wait."""

    allowed: bool
    retry_after: int = 0


ALLOW = Decision(True)


def quota(rate: Rate) -> throttled.Quota:
    return throttled.per_duration(timedelta(seconds=rate.period_seconds), rate.limit, rate.burst)


def _store_args(redis_url: str, ca_cert: str | None, *, asyncio: bool) -> dict[str, Any]:
    """throttled's RedisStore arguments: `rediss://` verified (against `ca_cert` when given)."""
    url, tls = redis_tls.client_args(redis_url, ca_cert, asyncio=asyncio)
    options: dict[str, Any] = {
        "SOCKET_TIMEOUT": STORE_TIMEOUT_SECONDS,
        "SOCKET_CONNECT_TIMEOUT": STORE_TIMEOUT_SECONDS,
    }
    if tls:
        options["CONNECTION_POOL_KWARGS"] = tls
        # throttled shares pools process-wide by URL alone: a store keeps its own, so it
        # never borrows one that verifies against another CA
        options["REUSE_CONNECTION"] = False
    return {"server": url, "options": options}


def async_store(redis_url: str | None, ca_cert: str | None = None) -> throttled.asyncio.BaseStore:
    """Redis (shared by every instance), or this process's memory when there is no URL."""
    if redis_url:
        return throttled.asyncio.RedisStore(**_store_args(redis_url, ca_cert, asyncio=True))
    return throttled.asyncio.MemoryStore(options={"MAX_SIZE": 100_000})


def sync_store(redis_url: str | None, ca_cert: str | None = None) -> throttled.BaseStore:
    if redis_url:
        return throttled.RedisStore(**_store_args(redis_url, ca_cert, asyncio=False))
    return throttled.MemoryStore(options={"MAX_SIZE": 100_000})


def _decision(limited: bool, retry_after: float) -> Decision:
    return Decision(False, max(1, math.ceil(retry_after))) if limited else ALLOW


class _Breaker:
    """Fail open: remember a store failure for PAUSE_SECONDS, and log it once per pause."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.until = 0.0
        self._lock = threading.Lock()

    def open(self) -> bool:
        return self.clock() < self.until

    def failed(self, exc: BaseException) -> Decision:
        with self._lock:
            if not self.open():
                log.warning(
                    "rate limit store unavailable; requests pass unlimited",
                    extra=fields(limit=self.name, error=type(exc).__name__, pause=PAUSE_SECONDS),
                )
            self.until = self.clock() + PAUSE_SECONDS
        return ALLOW


# what a store failure looks like: throttled's own error, or the client's (a timeout, a
# refused connection) where throttled does not wrap it
_STORE_ERRORS = (BaseThrottledError, OSError, TimeoutError)


class Limiter:
    """One rule over many keys, for asyncio code (the realtime service)."""

    def __init__(
        self,
        name: str,
        rate: Rate,
        store: throttled.asyncio.BaseStore,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.rate = rate
        self._throttle = throttled.asyncio.Throttled(
            using=RateLimiterType.TOKEN_BUCKET.value,
            quota=quota(rate),
            store=store,
            key_prefix=KEY_PREFIX,
        )
        self._breaker = _Breaker(name, clock)

    async def check(self, key: str) -> Decision:
        """Take a token for `key`; refused when its bucket is empty."""
        if self._breaker.open():
            return ALLOW
        try:
            result = await self._throttle.limit(f"{self.name}:{key}")
        except _STORE_ERRORS as exc:
            return self._breaker.failed(exc)
        return _decision(result.limited, result.state.retry_after)

    async def peek(self, key: str) -> Decision:
        """Whether `key` has a token left, without taking it."""
        if self._breaker.open():
            return ALLOW
        try:
            state = await self._throttle.peek(f"{self.name}:{key}")
        except _STORE_ERRORS as exc:
            return self._breaker.failed(exc)
        return _decision(state.remaining < 1, _refill_seconds(self.rate, state.remaining))


class SyncLimiter:
    """The same for synchronous code (the webhook under functions-framework).

    With `peek_cache_seconds`, a peek that found a token left is remembered for that long
    and answered from memory, so a busy webhook asks the store about Twitch's few addresses
    about once a second instead of once per delivery. It cannot let a refused client in for
    long: a key's first failed check on this instance (`check`, which always asks the
    store) forgets it, so past an empty bucket at most one request per key and instance
    gets through, and only within the window; other instances' failures are seen once the
    remembered answer expires."""

    def __init__(
        self,
        name: str,
        rate: Rate,
        store: throttled.BaseStore,
        *,
        clock: Clock = time.monotonic,
        peek_cache_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.rate = rate
        self._throttle = throttled.Throttled(
            using=RateLimiterType.TOKEN_BUCKET.value,
            quota=quota(rate),
            store=store,
            key_prefix=KEY_PREFIX,
        )
        self._breaker = _Breaker(name, clock)
        self._clock = clock
        self._peek_cache_seconds = peek_cache_seconds
        self._allowed_until: dict[str, float] = {}

    def check(self, key: str) -> Decision:
        self._allowed_until.pop(key, None)
        if self._breaker.open():
            return ALLOW
        try:
            result = self._throttle.limit(f"{self.name}:{key}")
        except _STORE_ERRORS as exc:
            return self._breaker.failed(exc)
        return _decision(result.limited, result.state.retry_after)

    def peek(self, key: str) -> Decision:
        if self._breaker.open():
            return ALLOW
        now = self._clock()
        if self._allowed_until.get(key, 0.0) > now:
            return ALLOW
        try:
            state = self._throttle.peek(f"{self.name}:{key}")
        except _STORE_ERRORS as exc:
            return self._breaker.failed(exc)
        decision = _decision(state.remaining < 1, _refill_seconds(self.rate, state.remaining))
        if decision.allowed and self._peek_cache_seconds > 0:
            if len(self._allowed_until) >= PEEK_CACHE_KEYS:
                self._allowed_until = {k: t for k, t in self._allowed_until.items() if t > now}
                if len(self._allowed_until) >= PEEK_CACHE_KEYS:  # all fresh: start over
                    self._allowed_until = {}
            self._allowed_until[key] = now + self._peek_cache_seconds
        return decision


def _refill_seconds(rate: Rate, remaining: int) -> float:
    """How long until one token is back (peek reports only the time to a full bucket)."""
    return max(0.0, (1 - remaining) * rate.period_seconds / rate.limit)


def client_ip(peer: str | None, forwarded_for: Sequence[str], trusted_hops: int) -> str:
    """The client's address: the peer's, or with `trusted_hops` proxies in front (each
    appending the address it saw to X-Forwarded-For) the entry that many from the right.

    Entries to the left of that one are the client's own claims and are not trusted. With
    fewer entries than hops (a request that bypassed a proxy), the leftmost one counts.
    """
    if trusted_hops <= 0:
        return peer or "unknown"
    entries = [e.strip() for value in forwarded_for for e in value.split(",") if e.strip()]
    if not entries:
        return peer or "unknown"
    return entries[-min(trusted_hops, len(entries))]


def forwarded_for(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[str]:
    """Every X-Forwarded-For header value, in order (a request may carry several)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [value for name, value in items if name.lower() == "x-forwarded-for"]


@dataclass(frozen=True)
class Limits:
    """The realtime service's limiters (None: that limit is off) and how to find the IP."""

    auth_ip: Limiter | None = None
    api_ip: Limiter | None = None
    api_subject: Limiter | None = None
    connect_ip: Limiter | None = None
    resume_subject: Limiter | None = None
    trusted_proxy_hops: int = 0

    @classmethod
    def build(
        cls, cfg: RateLimitSettings, redis_url: str | None, ca_cert: str | None = None
    ) -> Limits:
        store = async_store(redis_url, ca_cert)

        def limiter(name: str, rate: Rate | None) -> Limiter | None:
            return Limiter(name, rate, store) if rate is not None else None

        return cls(
            auth_ip=limiter("auth-ip", cfg.auth_ip),
            api_ip=limiter("api-ip", cfg.api_ip),
            api_subject=limiter("api-subject", cfg.api_subject),
            connect_ip=limiter("connect-ip", cfg.connect_ip),
            resume_subject=limiter("resume-subject", cfg.resume_subject),
            trusted_proxy_hops=cfg.trusted_proxy_hops,
        )


def webhook_limiter(
    cfg: RateLimitSettings, redis_url: str | None, ca_cert: str | None = None
) -> SyncLimiter | None:
    """Deliveries failing their signature, per IP (in memory per instance without Redis)."""
    if cfg.webhook_ip is None:
        return None
    return SyncLimiter(
        "webhook-ip",
        cfg.webhook_ip,
        sync_store(redis_url, ca_cert),
        peek_cache_seconds=PEEK_CACHE_SECONDS,
    )
