"""What every function's entry point shares: the method check, then the one error table."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import flask

from controlroom import edge

Handler = Callable[[flask.Request], flask.Response]


def http(log: logging.Logger, method: str = "POST") -> Callable[[Handler], Handler]:
    """Wrap a function's handler: other methods get 405, errors go through `edge`'s table."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def entry(request: flask.Request) -> flask.Response:
            if request.method != method:
                return flask.Response(status=405, headers={"Allow": method})
            try:
                return handler(request)
            except Exception as exc:  # noqa: BLE001 - mapped by the one table; the rest is logged
                status, body = edge.to_http(exc, log)
                return flask.Response(
                    body, status=status, mimetype="application/json", headers=edge.headers_for(exc)
                )

        return entry

    return wrap
