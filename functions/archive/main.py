"""functions/archive: export closed days to S3 and prune the hot store (Cloud Scheduler)."""

from __future__ import annotations

import json
import logging

import flask
import functions_framework

from controlroom import entrypoint, logs, services
from controlroom.usecases import archive as archiver
from controlroom.usecases import companies

logs.configure()
log = logging.getLogger("archive")


@functions_framework.http
@entrypoint.http(log)
def archive(request: flask.Request) -> flask.Response:
    service = services.archive()
    cfg = service.cfg
    with service.connect() as conn:
        summary = archiver.run(conn, service.s3, cfg.bucket, retention_days=cfg.retention_days)
        # deleted companies past their grace period: S3 prefixes, then rows (platform audit)
        purge = companies.purge_due(conn, service.s3, cfg.bucket, cfg.branding_bucket)
    report = {
        "exported": len(summary.exported),
        "rows": summary.rows,
        "bytes": summary.bytes,
        "skipped": summary.skipped,
        "failed": len(summary.failed),
        "pruned_rows": summary.pruned_rows,
        "companies_purged": len(purge.purged),
        "companies_purge_failed": len(purge.failed),
    }
    # a failed company-day is retried by the next run; the scheduler sees it as an error
    status = 500 if summary.failed or purge.failed else 200
    return flask.Response(json.dumps(report), status=status, mimetype="application/json")
