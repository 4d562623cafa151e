"""functions/notify: the Cloud Tasks target that posts one notification delivery.

Body {"company_id", "delivery_id"}; see controlroom/usecases/notifications.py. A post that
must be tried again later (5xx, no answer) raises NotificationRetryError, which the one error
table answers 503 so Cloud Tasks retries with the queue's backoff; every other outcome
(delivered, failed for good, skipped, already done) is 200.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.errors import BadRequestError
from controlroom.usecases import notifications

logs.configure()
log = logging.getLogger("notify")


@functions_framework.http
@entrypoint.http(log)
def notify(request: flask.Request) -> flask.Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("expected {company_id, delivery_id}")
    try:
        company_id, delivery_id = uuid.UUID(body["company_id"]), uuid.UUID(body["delivery_id"])
    except (KeyError, ValueError, TypeError, AttributeError):
        raise BadRequestError("company_id and delivery_id must be UUIDs") from None
    service = services.notify()
    with service.pool.connection() as conn:
        outcome = notifications.deliver(
            conn,
            company_id,
            delivery_id,
            datetime.now(UTC),
            keyring=service.keyring,
            public_url=service.cfg.public_url,
            dispatcher=service.dispatcher,
            allow_loopback=service.cfg.channels.allow_loopback,
        )
    return flask.Response(json.dumps(outcome.to_json()), status=200, mimetype="application/json")
