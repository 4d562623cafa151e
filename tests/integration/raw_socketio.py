"""Clients that talk to our servers byte by byte: raw HTTP requests, and a Socket.IO client
over a hand-made websocket that can stop reading (what a stalled browser tab looks like)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any
from urllib.parse import urlparse


def exchange(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, then read until the server closes (or goes quiet for `timeout`)."""
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout) as sock:
        # the server may answer (and close) before it has read everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return answer


def statuses(answer: bytes) -> list[int]:
    """The status codes of every HTTP response in `answer`, in order."""
    found, rest = [], answer
    while rest.startswith(b"HTTP/1."):
        head, _, rest = rest.partition(b"\r\n\r\n")
        found.append(int(head.split(b" ", 2)[1]))
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        rest = rest[length:]
    return found


class StalledClient:
    """A Socket.IO client on a websocket whose receive window can be left to fill up."""

    def __init__(self, url: str, auth: dict[str, Any], timeout: float = 10.0) -> None:
        parsed = urlparse(url)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # a small receive buffer, set before connecting, keeps the TCP window small
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(timeout)
        self.sock.connect((parsed.hostname, parsed.port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {parsed.hostname}:{parsed.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert self.read().startswith("0")  # Engine.IO open
        self.send("40" + json.dumps(auth))
        self.connected = self.read()

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        return chunk

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def read(self) -> str:
        """The next text frame's payload (server frames are unmasked, unfragmented)."""
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._take(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._take(8))
        payload = self._take(length)
        if first & 0x0F == 0x8:
            raise ConnectionError("close frame")
        return payload.decode()

    def read_until(self, prefix: str) -> str:
        while not (frame := self.read()).startswith(prefix):
            if frame == "2":
                self.send("3")
        return frame

    def send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def how_it_ends(self, quiet_seconds: float) -> str:
        """Read what arrives: "reset" when the server aborts the connection, "closed" when it
        closes it in order, "open" when it goes quiet for `quiet_seconds` and stays open."""
        self.sock.settimeout(quiet_seconds)
        try:
            while self.sock.recv(1 << 20):
                pass
        except TimeoutError:
            return "open"
        except ConnectionResetError:
            return "reset"
        return "closed"

    def close(self) -> None:
        self.sock.close()
