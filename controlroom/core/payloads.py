"""What a JSON body must be before anything reads it: one JSON object."""

from __future__ import annotations

import json
from typing import Any

from controlroom.errors import ControlRoomError


def json_object(raw: bytes | str, error: type[ControlRoomError]) -> dict[str, Any]:
    """The body as a JSON object; otherwise `error` ("body is not JSON" or "... not a JSON
    object"), never a stray ValueError."""
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        # ValueError: not JSON, not UTF-8/16/32, or an integer past Python's digit limit
        raise error("body is not JSON") from None
    if not isinstance(parsed, dict):
        raise error("body is not a JSON object")
    return parsed
