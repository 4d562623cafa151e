"""Twitch's reference sample deliveries, from shared/eventsub beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "shared" / "eventsub"


def sample_names() -> list[str]:
    return sorted(p.stem for p in SAMPLES_DIR.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES_DIR / f"{name}.json").read_text())
    return data


def message(name: str) -> bytes:
    return (SAMPLES_DIR / "messages" / f"{name}.json").read_bytes()
