"""The REST API under schemathesis: members of two companies, no 5xx, the schema, no leaks."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from controlroom import settings as cr_settings
from controlroom.dev.stack import LocalStack
from tests.fuzz import budget
from tests.integration.conftest import services_stack
from tests.integration.test_api import Agency, Api, make_agency

# examples per operation and per company (the properties' time budget does not apply here)
EXAMPLES = int(os.environ.get("FUZZ_API_EXAMPLES", "25"))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as env:
        # loopback only: without Twitch credentials the relay never calls Twitch
        for name in ("TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET"):
            env.delenv(name, raising=False)
        env.setenv("HELIX_API_URL", "http://127.0.0.1:9/helix")
        env.setenv("TWITCH_TOKEN_URL", "http://127.0.0.1:9/token")
        with services_stack(tmp_path_factory, "fuzz-api") as running:
            yield running


def _ids(agency: Agency) -> set[str]:
    return {str(agency.company), *map(str, agency.users.values()), *map(str, agency.creators)}


@dataclass(frozen=True)
class Caller:
    """A member of one company, with what it may aim at and what it must never see."""

    agency: Agency
    token: str
    mine: list[str]  # our creators and members, not the caller (it must not demote itself)
    foreign: set[str]  # the other company's ids

    @classmethod
    def of(cls, stack: LocalStack, own: Agency, other: Agency) -> Caller:
        mine = sorted(_ids(own) - {str(own.company), str(own.users["owner"])})
        return cls(own, Api(stack, own, "owner").token, mine, _ids(other))


def _fuzz(operation: Any, caller: Caller, base: str) -> Counter[int]:
    """EXAMPLES cases of one operation as one caller; the statuses it got back."""
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    cases = st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes))
    statuses: Counter[int] = Counter()
    name = caller.agency.name

    @settings(budget.ROUND_SETTINGS, max_examples=EXAMPLES)
    @given(case=cases, aim=st.sampled_from(sorted(caller.foreign) + caller.mine) | st.none())
    def prop(case: Any, aim: str | None) -> None:
        stolen = False
        if aim and case.path_parameters:
            # aim at real rows, the other company's or ours: a creator or a member
            case.path_parameters = {
                k: aim if _UUID.fullmatch(str(v)) else v for k, v in case.path_parameters.items()
            }
            stolen = aim in caller.foreign and aim in case.path_parameters.values()
        response = case.call(
            base_url=base, headers={"Authorization": f"Bearer {caller.token}"}, timeout=15
        )
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        assert not (stolen and response.status_code < 400), (
            f"{name} reached the other company's {case.path_parameters}"
        )
        leaked = set(_UUID.findall(response.text)) & caller.foreign
        assert not leaked, f"{name} saw the other company's ids {leaked}"

    prop()
    return statuses


def test_api_answers_every_company_without_5xx_schema_violation_or_leak(
    stack: LocalStack,
) -> None:
    assert stack.endpoints is not None
    cfg = cr_settings.DatabaseSettings.from_env(stack.endpoints.env())
    alpha, bravo = make_agency(cfg, "fuzzalpha", 6), make_agency(cfg, "fuzzbravo", 9)
    callers = [Caller.of(stack, alpha, bravo), Caller.of(stack, bravo, alpha)]
    base = Api(stack, alpha, "viewer").base
    schema = schemathesis.openapi.from_url(f"{base}/api/openapi.json")
    started, total = time.monotonic(), 0
    budget.API_LINES.append("")
    budget.API_LINES.append(f"schemathesis: {EXAMPLES} examples per operation and company")
    for result in schema.get_all_operations():
        operation = result.ok()
        for caller in callers:
            statuses = _fuzz(operation, caller, base)
            sent = sum(statuses.values())
            total += sent
            answers = " ".join(f"{code}x{n}" for code, n in sorted(statuses.items()))
            budget.API_LINES.append(
                f"  {operation.label:<40} {caller.agency.name:<10} {sent:>4} examples  {answers}"
            )
    budget.API_LINES.append(
        f"  {'API, total':<51} {total:>4} examples  {time.monotonic() - started:.1f} s"
    )
