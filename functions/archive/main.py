"""functions/archive: export closed days to S3 and prune the hot store (Cloud Scheduler)."""

from __future__ import annotations

import json
import logging

import flask
import functions_framework

from controlroom import archive as archiver
from controlroom import db, errors, logs, s3, settings

logs.configure()
log = logging.getLogger("archive")


@functions_framework.http
def archive(request: flask.Request) -> flask.Response:
    if request.method != "POST":
        return flask.Response(status=405, headers={"Allow": "POST"})
    try:
        cfg = settings.archive()
        with db.connect(cfg.database, autocommit=True) as conn:
            summary = archiver.run(
                conn, s3.client(cfg.s3_endpoint_url), cfg.bucket, retention_days=cfg.retention_days
            )
    except Exception as exc:  # noqa: BLE001 - mapped by the one table; the rest is logged
        status, body = errors.to_http(exc, log)
        return flask.Response(body, status=status, mimetype="application/json")
    report = {
        "exported": len(summary.exported),
        "rows": summary.rows,
        "bytes": summary.bytes,
        "skipped": summary.skipped,
        "failed": len(summary.failed),
        "pruned_rows": summary.pruned_rows,
    }
    # a failed company-day is retried by the next run; the scheduler sees it as an error
    status = 500 if summary.failed else 200
    return flask.Response(json.dumps(report), status=status, mimetype="application/json")
