"""functions/webhook: Twitch EventSub's HTTPS endpoint (public; authenticated by HMAC)."""

from __future__ import annotations

import logging

import flask
import functions_framework

from controlroom import entrypoint, errors, logs, services
from controlroom.adapters import ratelimit
from controlroom.core import eventsub
from controlroom.usecases import receiver

logs.configure()
log = logging.getLogger("webhook")
# Built at cold start, so a missing variable or a secret outside Twitch's 10-100 ASCII
# characters stops the deployment instead of failing the first delivery.
services.webhook()


def _read_body(request: flask.Request) -> bytes:
    if (request.content_length or 0) > eventsub.MAX_BODY_BYTES:
        raise errors.DeliveryTooLargeError("body too large")
    body: bytes = request.stream.read(eventsub.MAX_BODY_BYTES + 1)
    if len(body) > eventsub.MAX_BODY_BYTES:
        raise errors.DeliveryTooLargeError("body too large")
    return body


@functions_framework.http
@entrypoint.http(log)
def webhook(request: flask.Request) -> flask.Response:
    service = services.webhook()
    client = ratelimit.client_ip(
        request.remote_addr,
        request.headers.getlist("X-Forwarded-For"),
        service.trusted_proxy_hops,
    )
    receiver.admit(service.limiter, client)  # 429 before the body is read or HMAC'd
    reply = receiver.receive(
        dict(request.headers),
        _read_body(request),
        secrets=service.secrets,
        ledger=service.ledger,
        queue=service.queue,
        limiter=service.limiter,
        client=client,
    )
    return flask.Response(reply.body, status=reply.status, content_type=reply.content_type)
