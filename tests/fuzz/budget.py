"""The fuzz tier's time budget: each property runs rounds of examples until its share is spent."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# The whole hypothesis budget of `make fuzz`, shared evenly by the properties below.
TOTAL_SECONDS = float(os.environ.get("FUZZ_SECONDS", "150"))
PROPERTIES = 1  # how many share it: set by the conftest from the collected tests
ROUND = 200  # examples per round: a property overruns its share by one round at most

# Failing examples are kept and replayed first next time; .local is git-ignored.
DATABASE = DirectoryBasedExampleDatabase(
    str(Path(__file__).resolve().parents[2] / ".local" / "hypothesis")
)
ROUND_SETTINGS = settings(
    max_examples=ROUND,
    deadline=None,
    derandomize=False,
    database=DATABASE,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@dataclass
class Run:
    name: str
    examples: int = 0
    rounds: int = 0
    seconds: float = 0.0


RUNS: list[Run] = []
API_LINES: list[str] = []  # the schemathesis part's own summary


class Counter:
    """Counts the examples a property really ran (hypothesis does not say)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def run_for_budget(name: str, prop: Callable[[], None], counter: Counter) -> Run:
    """Run a @given property round after round (fresh random seeds) until its share is spent."""
    share = TOTAL_SECONDS / PROPERTIES
    run = Run(name)
    RUNS.append(run)
    start = time.monotonic()
    bounded = ROUND_SETTINGS(prop)
    try:
        while True:
            bounded()
            run.rounds += 1
            if time.monotonic() - start >= share:
                break
    finally:
        run.examples = counter.count
        run.seconds = time.monotonic() - start
    return run
