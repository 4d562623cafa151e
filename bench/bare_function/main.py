"""The baseline: a function on the same framework and server that only answers 204."""

import flask
import functions_framework


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    request.get_data()
    return flask.Response(status=204)
