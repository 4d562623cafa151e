"""The subscription reconciler against a local Helix stand-in and the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from controlroom import errors, settings
from controlroom.adapters import db, helix
from controlroom.usecases import subscriptions
from tests.integration.conftest import new_company
from tests.integration.fake_helix import FakeTwitch

CALLBACK = "https://controlroom.example/eventsub"
PER_BROADCASTER = len(subscriptions.PER_BROADCASTER)


@pytest.fixture
def twitch() -> Iterator[FakeTwitch]:
    fake = FakeTwitch().start()
    yield fake
    fake.stop()


def client(fake: FakeTwitch) -> helix.Helix:
    config = helix.HelixConfig(
        "test-client",
        settings.Secret("test-secret"),
        f"{fake.url}/helix",
        f"{fake.url}/oauth2/token",
    )
    return helix.Helix(config, timeout=5)


@pytest.fixture
def roster(db_settings: settings.DatabaseSettings) -> Iterator[tuple[uuid.UUID, list[str]]]:
    broadcasters = [str(880000 + i) for i in range(3)]
    with db.connect(db_settings) as conn:
        company = new_company(conn, "Roster")
        with db.tenant_transaction(conn, company):
            for b in broadcasters:
                conn.execute(
                    "INSERT INTO creators (company_id, twitch_user_id, twitch_login, display_name) "
                    "VALUES (%s, %s, %s, %s)",
                    (company, b, f"r_{b}", f"R{b}"),
                )
    yield company, broadcasters
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        conn.execute("DELETE FROM creators")


def run(db_settings: settings.DatabaseSettings, fake: FakeTwitch) -> subscriptions.Report:
    with db.connect(db_settings, autocommit=True) as conn:
        return subscriptions.run(
            conn,
            client(fake),
            client_id="test-client",
            callback=CALLBACK,
            secret="eventsub-secret-123",
        )


def ours(fake: FakeTwitch, broadcaster: str) -> list[dict[str, Any]]:
    return [s for s in fake.subs if broadcaster in s["condition"].values()]


def test_creates_missing_deletes_orphans_keeps_the_rest(
    db_settings: settings.DatabaseSettings, twitch: FakeTwitch, roster: tuple[uuid.UUID, list[str]]
) -> None:
    company, broadcasters = roster
    kept = twitch.add("stream.online", "1", {"broadcaster_user_id": broadcasters[0]}, CALLBACK)
    orphan = twitch.add("stream.online", "1", {"broadcaster_user_id": "999000"}, CALLBACK)
    foreign = twitch.add(
        "stream.online", "1", {"broadcaster_user_id": "999001"}, "https://other.example/cb"
    )
    report = run(db_settings, twitch)
    # every broadcaster anybody watches (other tests' creators too) gets the full set
    assert report.deleted == 1
    assert report.kept >= 1
    ids = {s["id"] for s in twitch.subs}
    assert kept["id"] in ids and foreign["id"] in ids and orphan["id"] not in ids
    for b in broadcasters:
        assert len(ours(twitch, b)) == PER_BROADCASTER
    raid = [s["condition"] for s in ours(twitch, broadcasters[1]) if s["type"] == "channel.raid"]
    assert {"to_broadcaster_user_id": broadcasters[1]} in raid
    assert {"from_broadcaster_user_id": broadcasters[1]} in raid
    assert any(s["type"] == "user.authorization.revoke" for s in twitch.subs)
    # statuses landed where the company can see them, and nowhere else
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        statuses = conn.execute(
            "SELECT DISTINCT broadcaster_user_id FROM eventsub_subscriptions"
        ).fetchall()
    assert {r["broadcaster_user_id"] for r in statuses} == set(broadcasters)
    # a second run changes nothing; it reads the now long list page by page (3 a page)
    listed_before = twitch.requests.count(("GET", "/helix/eventsub/subscriptions"))
    again = run(db_settings, twitch)
    assert (again.created, again.deleted) == (0, 0)
    assert again.kept == len([s for s in twitch.subs if s["transport"]["callback"] == CALLBACK])
    pages = twitch.requests.count(("GET", "/helix/eventsub/subscriptions")) - listed_before
    assert pages == -(-len(twitch.subs) // twitch.page_size)


def test_a_409_counts_as_existing(
    db_settings: settings.DatabaseSettings, twitch: FakeTwitch, roster: tuple[uuid.UUID, list[str]]
) -> None:
    twitch.conflict_types.add("channel.cheer")
    report = run(db_settings, twitch)
    assert report.already_existed >= 3
    assert report.failures == []


def test_a_403_is_stored_as_authorization_missing_per_type(
    db_settings: settings.DatabaseSettings, twitch: FakeTwitch, roster: tuple[uuid.UUID, list[str]]
) -> None:
    company, broadcasters = roster
    twitch.unauthorized_types |= {"channel.cheer", "channel.follow"}
    report = run(db_settings, twitch)
    assert report.authorization_missing >= 2 * len(broadcasters)
    assert report.failures == []
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        rows = conn.execute(
            "SELECT type, status FROM eventsub_subscriptions WHERE broadcaster_user_id = %s",
            (broadcasters[0],),
        ).fetchall()
    statuses = {r["type"]: r["status"] for r in rows}
    assert statuses["channel.cheer"] == "authorization_missing"
    assert statuses["channel.follow"] == "authorization_missing"
    assert statuses["stream.online"] != "authorization_missing"
    # granted later: the next run creates them and the status moves on
    twitch.unauthorized_types.clear()
    again = run(db_settings, twitch)
    assert again.authorization_missing == 0
    with db.connect(db_settings) as conn, db.tenant_transaction(conn, company):
        row = conn.execute(
            "SELECT status FROM eventsub_subscriptions "
            "WHERE broadcaster_user_id = %s AND type = 'channel.cheer'",
            (broadcasters[0],),
        ).fetchone()
    assert row is not None and row["status"] != "authorization_missing"


@pytest.mark.parametrize("fault", [429, 500, 503])
def test_rate_limits_and_outages_retry_later(
    db_settings: settings.DatabaseSettings,
    twitch: FakeTwitch,
    roster: tuple[uuid.UUID, list[str]],
    fault: int,
) -> None:
    run(db_settings, twitch)  # warm: the token is cached now
    twitch.subs.clear()
    twitch.fail_next = [fault]
    with pytest.raises(errors.RetryLaterError):
        run(db_settings, twitch)
    report = run(db_settings, twitch)  # the next scheduled run completes
    assert report.created >= 3 * PER_BROADCASTER


def test_an_empty_roster_never_deletes_everything(twitch: FakeTwitch) -> None:
    twitch.add("stream.online", "1", {"broadcaster_user_id": "1"}, CALLBACK)
    twitch.add("user.authorization.revoke", "1", {"client_id": "test-client"}, CALLBACK)
    report = subscriptions.reconcile(
        client(twitch),
        [],
        client_id="other-client",
        callback=CALLBACK,
        secret="s" * 12,
        record=lambda *_: None,
    )
    assert report.refused_to_empty
    assert report.deleted == 0
    assert len([s for s in twitch.subs if s["transport"]["callback"] == CALLBACK]) >= 2


def test_login_lookup_and_token_refresh(twitch: FakeTwitch) -> None:
    helix_client = client(twitch)
    # the user as Twitch sent it; a profile image is kept only from the trusted origin (none here)
    assert helix_client.user_by_login("newcreator") == {
        **twitch.users["newcreator"],
        "profile_image_url": None,
    }
    assert helix_client.user_by_login("nobody") is None
    twitch.tokens.clear()  # Twitch revoked the app token: the client fetches a new one once
    assert helix_client.user_by_login("newcreator") is not None


def test_looking_again_records_what_twitch_says_now(twitch: FakeTwitch) -> None:
    # created a moment ago as pending; Twitch has since verified our callback
    twitch.add("stream.online", "1", {"broadcaster_user_id": "5150"}, CALLBACK)
    twitch.add("stream.online", "1", {"broadcaster_user_id": "5151"}, "https://other.example/cb")
    twitch.add("user.authorization.revoke", "1", {"client_id": "test-client"}, CALLBACK)
    seen: list[tuple[str, str]] = []
    count = subscriptions.look_again(
        client(twitch), CALLBACK, lambda b, sub: seen.append((b, sub["status"]))
    )
    assert (count, seen) == (1, [("5150", "enabled")])
