"""Detection rules: what each rule watches for, its defaults and the limits of its thresholds.

Pure data and arithmetic. The use case (controlroom/usecases/incidents.py) reads the facts it
needs from the store and asks these functions whether a rule fires; docs/incidents.md explains
each default and where its numbers come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from controlroom.errors import InvalidError

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
Status = Literal["open", "acknowledged", "resolved"]
STATUSES: tuple[Status, ...] = get_args(Status)


def severity_rank(severity: str) -> int:
    return [str(s) for s in SEVERITIES].index(severity)


@dataclass(frozen=True)
class ParamSpec:
    label: str
    default: int
    minimum: int
    maximum: int
    unit: str = ""


@dataclass(frozen=True)
class RuleSpec:
    title: str
    description: str
    default_severity: Severity
    default_enabled: bool = True
    params: Mapping[str, ParamSpec] = field(default_factory=dict)


RULES: dict[str, RuleSpec] = {
    "went_live": RuleSpec(
        "Went live",
        "A creator started streaming. Off by default: going live is normal; turn it on to "
        "announce streams in a channel.",
        "info",
        default_enabled=False,
    ),
    "went_offline": RuleSpec(
        "Went offline",
        "A creator stopped streaming. Resolves itself when they are live again. Off by default.",
        "info",
        default_enabled=False,
    ),
    "stream_dropped": RuleSpec(
        "Stream dropped",
        "The stream went offline and came back within the window, or went offline right after "
        "a viewer collapse.",
        "warning",
        params={
            "window_minutes": ParamSpec("Back within", 10, 1, 60, "min"),
            "collapse_minutes": ParamSpec("Offline after a collapse within", 5, 1, 30, "min"),
        },
    ),
    "viewer_drop": RuleSpec(
        "Viewer drop",
        "Live viewers fell by at least the given share within the window. Resolves itself when "
        "viewers are back to 80% of the earlier peak, or the stream ends.",
        "warning",
        params={
            "drop_percent": ParamSpec("Drop of at least", 50, 10, 95, "%"),
            "window_minutes": ParamSpec("Within", 5, 2, 30, "min"),
            "min_viewers": ParamSpec("Only above", 50, 1, 1_000_000, "viewers"),
        },
    ),
    "raid_incoming": RuleSpec(
        "Incoming raid",
        "Another channel raided the creator with at least the given number of viewers.",
        "warning",
        params={"min_viewers": ParamSpec("Raid of at least", 1000, 1, 10_000_000, "viewers")},
    ),
    "hate_raid": RuleSpec(
        "Suspected hate raid or follow bots",
        "Follows or chat messages arrive at a multiple of the creator's trailing rate (above a "
        "floor), with or without a raid before them, or a burst of bans. Resolves itself after "
        "a quiet period.",
        "critical",
        params={
            "window_seconds": ParamSpec("Measured over", 60, 10, 600, "s"),
            "baseline_minutes": ParamSpec("Trailing rate over", 30, 5, 240, "min"),
            "follow_factor": ParamSpec("Follows at", 5, 2, 100, "times trailing"),
            "min_follows": ParamSpec("And at least", 30, 1, 100_000, "follows"),
            "chat_factor": ParamSpec("Chat at", 5, 2, 100, "times trailing"),
            "min_chat": ParamSpec("And at least", 150, 1, 1_000_000, "messages"),
            "ban_burst": ParamSpec("Or bans of at least", 10, 2, 10_000, "bans"),
            "raid_lookback_minutes": ParamSpec("Raid counted if within", 10, 1, 60, "min"),
            "quiet_minutes": ParamSpec("Resolves after quiet for", 10, 1, 240, "min"),
        },
    ),
    "gift_bomb": RuleSpec(
        "Gift bomb",
        "One viewer gifted at least the given number of subscriptions at once.",
        "info",
        params={"min_gifts": ParamSpec("Gifts of at least", 50, 1, 100_000, "subs")},
    ),
    "hype_train": RuleSpec(
        "Hype train",
        "A hype train reached the given level.",
        "info",
        params={"min_level": ParamSpec("Level", 5, 1, 100, "")},
    ),
    "authorization_lost": RuleSpec(
        "Authorization lost",
        "The creator revoked our access on Twitch, or Twitch revoked a subscription: events stop "
        "arriving. Resolves itself when the creator connects again.",
        "critical",
    ),
}


@dataclass(frozen=True)
class RuleConfig:
    """A rule as one company runs it: defaults with the company's overrides on top."""

    rule: str
    enabled: bool
    severity: Severity
    params: Mapping[str, int]

    def __getitem__(self, name: str) -> int:
        return self.params[name]


def defaults(rule: str) -> RuleConfig:
    spec = RULES[rule]
    return RuleConfig(
        rule,
        spec.default_enabled,
        spec.default_severity,
        {n: p.default for n, p in spec.params.items()},
    )


def effective(rule: str, override: Mapping[str, Any] | None) -> RuleConfig:
    """The defaults, overlaid with a stored override (unknown stored params are ignored)."""
    base = defaults(rule)
    if not override:
        return base
    params = dict(base.params)
    stored = override.get("params") or {}
    for name in params:
        if isinstance(stored.get(name), int):
            params[name] = stored[name]
    return RuleConfig(rule, bool(override["enabled"]), override["severity"], params)


def validate(rule: str, enabled: Any, severity: Any, params: Mapping[str, Any]) -> RuleConfig:
    """A company's change to a rule, checked against the spec (InvalidError says what is wrong)."""
    spec = RULES.get(rule)
    if spec is None:
        raise InvalidError(f"unknown rule {rule!r}")
    if not isinstance(enabled, bool):
        raise InvalidError("enabled must be true or false")
    if severity not in SEVERITIES:
        raise InvalidError(f"severity must be one of {', '.join(SEVERITIES)}")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise InvalidError(f"rule {rule!r} has no parameter {unknown[0]!r}")
    values = {n: p.default for n, p in spec.params.items()}
    for name, given in params.items():
        p = spec.params[name]
        value = int(given) if isinstance(given, float) and given.is_integer() else given
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidError(f"{name} must be a whole number")
        if not p.minimum <= value <= p.maximum:
            raise InvalidError(f"{name} must be between {p.minimum} and {p.maximum}")
        values[name] = value
    return RuleConfig(rule, enabled, severity, values)


def describe(config: RuleConfig) -> dict[str, Any]:
    """A rule as the API shows it: effective values, defaults and the limits of each value."""
    spec = RULES[config.rule]
    base = defaults(config.rule)
    return {
        "rule": config.rule,
        "title": spec.title,
        "description": spec.description,
        "enabled": config.enabled,
        "severity": config.severity,
        "params": dict(config.params),
        "defaults": {
            "enabled": base.enabled,
            "severity": base.severity,
            "params": dict(base.params),
        },
        "param_specs": [
            {
                "name": n,
                "label": p.label,
                "minimum": p.minimum,
                "maximum": p.maximum,
                "unit": p.unit,
            }
            for n, p in spec.params.items()
        ],
    }


# --- the arithmetic of the rules --------------------------------------------------------


def spike(
    recent: int,
    trailing: int,
    *,
    window_seconds: int,
    baseline_minutes: int,
    factor: int,
    floor: int,
) -> bool:
    """`recent` events in the last window against `trailing` in the baseline before it.

    Fires when the recent count reaches the floor and `factor` times what the trailing rate
    predicts for one window (a creator with no history has a prediction of zero).
    """
    expected = trailing * window_seconds / (baseline_minutes * 60)
    return recent >= floor and recent >= factor * expected


def dropped(peak: int, now: int, *, drop_percent: int, min_viewers: int) -> bool:
    """Viewers fell from `peak` to `now` by at least drop_percent, from at least min_viewers."""
    return peak >= min_viewers and now <= peak * (100 - drop_percent) / 100


def recovered(peak: int, now: int) -> bool:
    """Viewers are back to 80% of the peak before the drop."""
    return now >= peak * 0.8
