"""functions/subscriptions: reconcile Twitch's EventSub subscriptions with the rosters.

Called by a Cloud Task when a creator is added or removed, and by Cloud Scheduler.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.usecases import subscriptions as reconciler

logs.configure()
log = logging.getLogger("subscriptions")

# after creating subscriptions, look again this much later: Twitch verifies the callback
# within seconds, and the statuses then say enabled rather than pending until the next run
SETTLE_SECONDS = 5.0


@functions_framework.http
@entrypoint.http(log)
def subscriptions(request: flask.Request) -> flask.Response:
    service = services.subscriptions()
    if service.helix is None:
        log.info("subscriptions: Twitch is not configured; nothing to do")
        body = {"status": "not configured"}
        return flask.Response(json.dumps(body), status=200, mimetype="application/json")
    cfg = service.cfg
    assert cfg.client_id and cfg.callback_url and cfg.eventsub_secret
    with service.pool.connection() as conn:
        report = reconciler.run(
            conn,
            service.helix,
            client_id=cfg.client_id,
            callback=cfg.callback_url,
            secret=cfg.eventsub_secret.reveal(),
            chat_user_id=cfg.chat_user_id,
            settle_seconds=SETTLE_SECONDS,
        )
    return flask.Response(
        json.dumps({"status": "reconciled", **asdict(report)}),
        status=200,
        mimetype="application/json",
    )
