"""A small closed-loop HTTP load generator (keep-alive connections, one per worker thread)."""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


def run(
    url: str, requests: Sequence[Request], workers: int = 8, rate: float | None = None
) -> Result:
    """Send every request once, `workers` at a time: as fast as the server answers, or, with
    `rate`, each at its due time (open loop; latency then includes no queueing of ours)."""
    parts = urlsplit(url)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cursor = iter(range(len(requests)))

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            req = requests[index]
            if rate is not None:
                pause = begin + index / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            started = time.perf_counter()
            conn.request("POST", parts.path or "/", body=req.body, headers=req.headers)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    begin = started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result(len(requests), time.perf_counter() - started, latencies, statuses)
