"""`controlroom simulate`'s audiences: plausible counts that drift, never negative."""

from __future__ import annotations

import itertools
import random

from controlroom.dev.twitchsim import Broadcaster, ViewerDrift


def test_simulated_audiences_drift_and_stay_plausible() -> None:
    drift = ViewerDrift([Broadcaster(str(i), f"creator_{i}") for i in range(20)], random.Random(7))
    start = dict(drift.viewers)
    assert all(20 <= v < 1_000_000 for v in start.values())

    steps = [drift.step() for _ in range(120)]  # two hours at one step a minute

    assert all(v >= 0 for counts in steps for v in counts.values())
    assert steps[-1] != start
    # a minute's change is a few percent, not a jump from nothing to thousands
    small = sum(
        1
        for before, after in itertools.pairwise(steps)
        for k in before
        if abs(after[k] - before[k]) <= max(10, before[k] * 0.15)
    )
    assert small >= 0.9 * 119 * 20
