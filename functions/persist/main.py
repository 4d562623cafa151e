"""functions/persist: the Cloud Tasks target that stores and publishes a delivery."""

from __future__ import annotations

import logging
import os

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.usecases import ingest

logs.configure()
log = logging.getLogger("persist")

# Concurrent deliveries for one company share a transaction and a commit (docs/decisions.md);
# PERSIST_GROUP_COMMIT=off stores each delivery alone, as before (a switch for comparing).
GROUP = None if os.environ.get("PERSIST_GROUP_COMMIT", "on") == "off" else ingest.GroupCommit()


@functions_framework.http
@entrypoint.http(log)
def persist(request: flask.Request) -> flask.Response:
    service = services.persist()
    with service.pool.connection() as conn:
        ingest.ingest(
            request.get_data(cache=False), conn, service.publisher, service.dispatcher, GROUP
        )
    return flask.Response(status=204)
