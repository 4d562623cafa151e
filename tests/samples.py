"""Twitch's reference sample deliveries, from shared/eventsub beside the checkout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# shared/ sits beside the checkout (as in CI); CONTROLROOM_SAMPLES points elsewhere if not
SAMPLES_DIR = Path(
    os.environ.get(
        "CONTROLROOM_SAMPLES", Path(__file__).resolve().parents[2] / "shared" / "eventsub"
    )
)
if not SAMPLES_DIR.is_dir():
    raise RuntimeError(
        f"Twitch's sample deliveries are expected in {SAMPLES_DIR} (shared/eventsub beside the "
        "checkout); set CONTROLROOM_SAMPLES to their folder"
    )


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES_DIR / f"{name}.json").read_text())
    return data


def message(name: str) -> bytes:
    return (SAMPLES_DIR / "messages" / f"{name}.json").read_bytes()
