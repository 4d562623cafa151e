"""Errors of the REST API's use cases, each with its HTTP status and a stable code."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnauthorizedError(ApiError):
    status, code = 401, "unauthorized"


class ForbiddenError(ApiError):
    status, code = 403, "forbidden"


class NotFoundError(ApiError):
    """Also for rows of another company: their existence must not leak."""

    status, code = 404, "not_found"


class ConflictError(ApiError):
    status, code = 409, "conflict"


class TooLargeError(ApiError):
    status, code = 413, "too_large"


class InvalidError(ApiError):
    status, code = 422, "invalid"


class UnavailableError(ApiError):
    status, code = 503, "unavailable"
