"""functions/pulse: the audience pulse, called by Cloud Scheduler every minute.

Reads Get Streams for every watched creator and stores viewer samples per company; see
controlroom/usecases/pulse.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import UTC, datetime

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.usecases import pulse as audience

logs.configure()
log = logging.getLogger("pulse")


@functions_framework.http
@entrypoint.http(log)
def pulse(request: flask.Request) -> flask.Response:
    service = services.pulse()
    if service.helix is None:
        log.info("pulse: Twitch is not configured; nothing to do")
        body = {"status": "not configured"}
        return flask.Response(json.dumps(body), status=200, mimetype="application/json")
    with service.pool.connection() as conn:
        report = audience.run(
            conn, service.helix, service.publisher, service.dispatcher, datetime.now(UTC)
        )
    # a company whose samples could not be stored is a failed run for Cloud Scheduler's log
    status = 500 if report.failed else 200
    return flask.Response(
        json.dumps({"status": "sampled", **asdict(report)}),
        status=status,
        mimetype="application/json",
    )
