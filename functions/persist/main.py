"""functions/persist: the Cloud Tasks target that stores and publishes a delivery."""

from __future__ import annotations

import logging

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.usecases import ingest

logs.configure()
log = logging.getLogger("persist")


@functions_framework.http
@entrypoint.http(log)
def persist(request: flask.Request) -> flask.Response:
    service = services.persist()
    with service.pool.connection() as conn:
        ingest.ingest(request.get_data(cache=False), conn, service.publisher, service.dispatcher)
    return flask.Response(status=204)
