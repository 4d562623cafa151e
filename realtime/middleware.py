"""ASGI middleware of the REST API: the request body limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from realtime.schemas import error_response

MAX_BODY_BYTES = 64 * 1024


class _BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413, whether the client declares the
    length or streams the body chunked (which no Content-Length check would catch)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(
            413, "too_large", f"request bodies are at most {self.max_bytes} bytes"
        )
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if any(not v.isdigit() or int(v) > self.max_bytes for v in lengths):
            await too_large(scope, receive, send)
            return
        received, tripped, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    tripped = True
                    raise _BodyTooLargeError()
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            if tripped:  # whatever the app made of the aborted read, the answer is 413
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await too_large(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, answer)
        except _BodyTooLargeError:
            if not started:
                await too_large(scope, receive, send)
