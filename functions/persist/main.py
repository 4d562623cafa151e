"""functions/persist: the Cloud Tasks target that stores and publishes a delivery."""

from __future__ import annotations

import logging

import flask
import functions_framework

from controlroom import errors, ingest, logs, services

logs.configure()
log = logging.getLogger("persist")


@functions_framework.http
def persist(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return flask.Response(status=405, headers={"Allow": "POST"})
    try:
        service = services.persist()
        with service.pool.connection() as conn:
            ingest.ingest(request.get_data(cache=False), conn, service.publisher)
    except Exception as exc:  # noqa: BLE001 - mapped by the one table; the rest is logged
        status, body = errors.to_http(exc, log)
        return flask.Response(body, status=status, mimetype="application/json")
    return flask.Response(status=204)
