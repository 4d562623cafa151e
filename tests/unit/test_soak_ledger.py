"""The soak's and chaos's ledger check: it must notice each way an event can go wrong."""

from __future__ import annotations

import uuid

from bench.soak import Agency, Sent, check_rows
from controlroom.dev import twitchsim

A, B = uuid.uuid4(), uuid.uuid4()
SOLO, SHARED = twitchsim.Broadcaster("1", "solo"), twitchsim.Broadcaster("2", "shared")
AGENCY = Agency(
    companies=[A, B],
    broadcasters=[SOLO, SHARED],
    watchers={"1": [A], "2": [A, B]},
    tokens={},
)


def ledger() -> dict[str, Sent]:
    return {
        "m1": Sent("1", b"{}", attempts=1, accepted_ms=1000.0),
        "m2": Sent("2", b"{}", attempts=2, accepted_ms=2000.0),  # stored for A and for B
        "m3": Sent("1", b"{}", attempts=15, gave_up=True),  # never accepted: not expected
    }


def clean_rows() -> list[tuple[uuid.UUID, int, str]]:
    return [(A, 1, "m1"), (A, 2, "m2"), (B, 1, "m2")]


def test_a_clean_run_is_clean() -> None:
    result = check_rows(clean_rows(), AGENCY, ledger())
    assert result.clean
    assert (result.accepted, result.gave_up, result.unresolved) == (2, 1, 0)
    assert result.stored == {str(A): 2, str(B): 1}
    assert result.heads == {str(A): 2, str(B): 1}
    assert result.sent_by_seq[str(A)] == [(1, 1000.0, False), (2, 2000.0, False)]


def test_an_event_missing_for_one_watching_company_is_lost() -> None:
    result = check_rows([(A, 1, "m1"), (A, 2, "m2")], AGENCY, ledger())
    assert result.lost == 1
    assert not result.clean


def test_an_event_stored_twice_is_counted() -> None:
    result = check_rows([*clean_rows(), (A, 3, "m2")], AGENCY, ledger())
    assert result.stored_twice == 1
    assert not result.clean


def test_rows_nobody_sent_and_gaps_in_seq_are_counted() -> None:
    result = check_rows([*clean_rows(), (B, 3, "m1")], AGENCY, ledger())
    assert result.unexpected == 1  # B does not watch creator 1
    assert result.seq_gaps == 1  # B has seqs 1 and 3
    assert not result.clean


def test_a_row_for_a_refused_delivery_is_not_foreign_but_one_nobody_sent_is() -> None:
    # persist may store what the webhook queued before answering 503: at least once
    result = check_rows([*clean_rows(), (A, 3, "m3")], AGENCY, ledger())
    assert result.unexpected == 0
    assert result.clean
    narrowed = check_rows([*clean_rows(), (A, 3, "forged")], AGENCY, ledger(), messages={"m1"})
    assert narrowed.unexpected == 1
    assert not narrowed.clean


def test_a_delivery_neither_accepted_nor_given_up_fails_the_run() -> None:
    pending = {**ledger(), "m4": Sent("1", b"{}", attempts=1)}
    result = check_rows(clean_rows(), AGENCY, pending)
    assert result.unresolved == 1
    assert not result.clean


def test_a_scenario_checks_only_its_own_deliveries() -> None:
    result = check_rows([(A, 1, "m1")], AGENCY, ledger(), messages={"m1"})
    assert result.clean
    assert result.accepted == 1
