"""Cloud Scheduler's stand-in for the local stack: a thread that POSTs to a function on a
fixed interval (the pulse every minute, as the Cloud Scheduler job in terraform does)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Callable


class SchedulerJob:
    """POST an empty body to `url` every `interval` seconds until stop(); a failed call is
    reported through `progress` and the next one is made on time."""

    def __init__(
        self,
        name: str,
        url: str,
        interval: float,
        progress: Callable[[str], None] | None = None,
        timeout: float = 50.0,  # the Cloud Scheduler job's attempt deadline
    ) -> None:
        self.name = name
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.progress = progress or (lambda _msg: None)
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"scheduler-{self.name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> int:
        """One call now: the function's status, or 0 when it could not be reached."""
        request = urllib.request.Request(self.url, data=b"", method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            status = 0
        self.runs += 1
        if status != 200:
            self.progress(f"scheduled {self.name} run answered {status or 'nothing'}")
        return status

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
            self._thread = None
