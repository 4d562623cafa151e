"""Creators' avatars and live previews on the real stack: Get Users on add and daily in
batches by the pulse, Get Streams' preview template while live, only URLs on the configured
image origin stored, the origin in the CSP's img-src, every write under the company's RLS."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from controlroom import settings
from controlroom.adapters import db
from controlroom.adapters.emitter import SocketIOPublisher
from controlroom.adapters.helix import Helix, HelixConfig, trusted_image_url
from controlroom.dev import dbadmin, twitchsim, twitchstub
from controlroom.dev.stack import LocalStack, local
from controlroom.dev.stack.process import free_port
from controlroom.usecases import pulse
from tests.integration.conftest import new_company, services_stack, stack_env
from tests.integration.listener import wait_for
from tests.integration.test_api import Agency, Api, make_agency
from tests.integration.test_pulse import ViewersClient

# broadcasters of this module (distinct from the other modules' ids, though each has a stack)
POOL = [str(7_300_000 + i) for i in range(160)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with services_stack(tmp_path_factory, "images") as running:
        # the tests run the pulse themselves, at the times they choose
        assert running.pulse_job is not None
        running.pulse_job.stop()
        yield running


@pytest.fixture(scope="module")
def env(stack: LocalStack) -> dict[str, str]:
    return stack_env(stack)


@pytest.fixture(scope="module")
def cfg(env: dict[str, str]) -> settings.DatabaseSettings:
    return settings.DatabaseSettings.from_env(env)


class OwnTwitch:
    """A Twitch stand-in of the test's own, whose origin is the image origin of its Helix."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = twitchstub.serve(self.port, {"img-client": "img-secret"})
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.helix = Helix(
            HelixConfig(
                "img-client",
                settings.Secret("img-secret"),
                f"{self.origin}/helix",
                f"{self.origin}/oauth2/token",
                image_origin=self.origin,
            )
        )

    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.origin}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.origin}/control/streams", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def own_twitch() -> Iterator[OwnTwitch]:
    twitch = OwnTwitch()
    yield twitch
    twitch.close()


def watching(
    cfg: settings.DatabaseSettings,
    name: str,
    broadcasters: list[str],
    checked_at: datetime | None = None,
    avatar: str | None = None,
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    """A company watching `broadcasters` (logins c_<id>), written as the runtime role."""
    with db.connect(cfg) as conn:
        company = new_company(conn, name)
        creators = {}
        with db.tenant_transaction(conn, company):
            for b in broadcasters:
                creators[b] = conn.execute(
                    "INSERT INTO creators (company_id, twitch_user_id, twitch_login, "
                    "display_name, profile_image_url, images_checked_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (company, b, f"c_{b}", f"C{b}", avatar, checked_at),
                ).fetchone()["id"]
    return company, creators


def images(cfg: settings.DatabaseSettings, company: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    """The image columns of the company's creators, read as the runtime role in its tenant."""
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        rows = conn.execute(
            "SELECT id, company_id, profile_image_url, preview_url, images_checked_at FROM creators"
        ).fetchall()
    return {r["id"]: r for r in rows}


def run_pulse(
    cfg: settings.DatabaseSettings, env: dict[str, str], twitch: OwnTwitch, now: datetime
) -> pulse.PulseReport:
    with db.connect(cfg, autocommit=True) as conn:
        return pulse.run(conn, twitch.helix, SocketIOPublisher(env["REDIS_URL"]), None, now)


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()


@pytest.fixture(scope="module")
def agencies(cfg: settings.DatabaseSettings) -> tuple[Agency, Agency]:
    return make_agency(cfg, "img_alpha", 0), make_agency(cfg, "img_bravo", 0)


def test_adding_by_login_stores_the_avatar_and_the_csp_allows_its_origin(
    stack: LocalStack, env: dict[str, str], agencies: tuple[Agency, Agency]
) -> None:
    alpha, bravo = agencies
    origin = env["TWITCH_IMAGE_ORIGIN"]
    assert origin == env["HELIX_API_URL"].removesuffix("/helix")  # the stack's stand-in
    admin = Api(stack, alpha, "admin")

    status, created = admin("POST", "/api/creators", {"login": "pixel_owl"})

    assert status == 201
    assert created["avatar_url"] == f"{origin}/images/avatars/pixel_owl.svg"
    assert created["preview_url"] is None  # not live
    listed = {c["twitch_login"]: c for c in admin("GET", "/api/creators")[1]}
    assert listed["pixel_owl"]["avatar_url"] == created["avatar_url"]
    # the other company sees none of it
    other = Api(stack, bravo, "admin")
    assert "pixel_owl" not in {c["twitch_login"] for c in other("GET", "/api/creators")[1]}

    # the stand-in serves a real, cacheable SVG placeholder there
    status, headers, body = fetch(created["avatar_url"])
    assert status == 200
    assert headers["content-type"] == "image/svg+xml"
    assert "max-age" in headers["cache-control"]
    assert body.startswith(b"<svg") and b"<script" not in body and b">P</text>" in body

    assert stack.endpoints is not None and stack.endpoints.relay_url
    for path in ("/", "/api/openapi.json"):
        with urllib.request.urlopen(f"{stack.endpoints.relay_url}{path}", timeout=10) as answer:
            csp = answer.headers["Content-Security-Policy"]
        img_src = next(d for d in csp.split("; ") if d.startswith("img-src "))
        assert origin in img_src.split(), csp
        assert origin not in next(d for d in csp.split("; ") if d.startswith("default-src"))


def test_the_stand_in_draws_previews_at_the_size_asked_within_bounds(
    own_twitch: OwnTwitch,
) -> None:
    stream = twitchsim.set_stream(own_twitch.origin, POOL[0], 10, login="calm_cat")
    assert stream is not None
    template = stream["thumbnail_url"]
    assert template == (
        f"{own_twitch.origin}/images/previews/live_user_calm_cat-{{width}}x{{height}}.svg"
    )
    status, headers, body = fetch(template.replace("{width}", "320").replace("{height}", "180"))
    assert (status, headers["content-type"]) == (200, "image/svg+xml")
    assert b'width="320" height="180"' in body
    _s, _h, huge = fetch(template.replace("{width}", "99999").replace("{height}", "99999"))
    assert b'width="1920" height="1080"' in huge
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(f"{own_twitch.origin}/images/previews/../../control/streams")
    assert refused.value.code == 404


def test_the_pulse_refreshes_stale_avatars_in_batches_of_100_and_leaves_fresh_ones(
    stack: LocalStack, cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    now = datetime.now(UTC) + timedelta(days=30)  # later than anything other tests wrote
    stale, stale_creators = watching(
        cfg, "img-stale", POOL[10:160], checked_at=now - timedelta(days=2)
    )
    # arranged as the superuser: every other company's avatars are fresh at `now`
    assert stack.endpoints is not None
    admin_url = dbadmin.with_database(stack.endpoints.admin_url, local.DATABASE)
    with psycopg.connect(admin_url, row_factory=dict_row, autocommit=True) as superuser:
        superuser.execute(
            "UPDATE creators SET images_checked_at = %s WHERE company_id <> %s", (now, stale)
        )
    fresh_at = now - timedelta(hours=1)
    fresh, fresh_creators = watching(
        cfg, "img-fresh", [POOL[5]], checked_at=fresh_at, avatar=f"{own_twitch.origin}/old.svg"
    )
    before = own_twitch.state()["user_requests"]

    first = run_pulse(cfg, env, own_twitch, now)

    assert (first.failed, first.avatars_checked) == ([], 100)
    assert own_twitch.state()["user_requests"] == before + 1  # one Get Users for 100 ids
    rows = images(cfg, stale)
    refreshed = [r for r in rows.values() if r["images_checked_at"] == now]
    assert len(refreshed) == 100
    for r in refreshed:
        assert r["profile_image_url"].startswith(f"{own_twitch.origin}/images/avatars/")

    second = run_pulse(cfg, env, own_twitch, now + timedelta(minutes=1))
    assert second.avatars_checked == 50
    rows = images(cfg, stale)
    assert all(r["images_checked_at"] is not None for r in rows.values())
    assert all(r["profile_image_url"] for r in rows.values())
    checked = {r["id"]: r["images_checked_at"] for r in rows.values()}
    # a day has not passed for any of them: nothing is asked again
    third = run_pulse(cfg, env, own_twitch, now + timedelta(minutes=2))
    assert (third.failed, third.avatars_checked) == ([], 0)
    assert {r["id"]: r["images_checked_at"] for r in images(cfg, stale).values()} == checked
    assert set(checked) == set(stale_creators.values())

    (kept,) = images(cfg, fresh).values()
    assert kept["id"] == fresh_creators[POOL[5]]
    assert kept["images_checked_at"] == fresh_at
    assert kept["profile_image_url"] == f"{own_twitch.origin}/old.svg"


def test_preview_is_stored_while_live_pushed_and_cleared_when_offline(
    stack: LocalStack,
    cfg: settings.DatabaseSettings,
    env: dict[str, str],
    own_twitch: OwnTwitch,
) -> None:
    live_b, quiet_b = POOL[1], POOL[2]
    company, creators = watching(cfg, "img-live", [live_b])
    other, other_creators = watching(cfg, "img-other", [quiet_b])
    user = stack.keys.token("img-live-viewer", company, "viewer")
    with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
        subject = conn.execute(
            "INSERT INTO users (company_id, subject) VALUES (%s, 'img-live-viewer') RETURNING id",
            (company,),
        ).fetchone()["id"]
        conn.execute(
            "INSERT INTO members (company_id, user_id, role) VALUES (%s, %s, 'viewer')",
            (company, subject),
        )
    client = ViewersClient(stack.relays[0].url)
    try:
        assert client.connect({"token": user})
        client.wait_live()
        twitchsim.set_stream(own_twitch.origin, live_b, 321, login=f"c_{live_b}")
        now = datetime.now(UTC) + timedelta(days=40)

        run_pulse(cfg, env, own_twitch, now)

        template = (
            f"{own_twitch.origin}/images/previews/live_user_c_{live_b}-{{width}}x{{height}}.svg"
        )
        assert images(cfg, company)[creators[live_b]]["preview_url"] == template
        assert images(cfg, other)[other_creators[quiet_b]]["preview_url"] is None

        def pushed(url: str | None) -> bool:
            return any(
                s["creator_id"] == str(creators[live_b]) and s.get("preview_url") == url
                for m in list(client.viewers)
                for s in m["samples"]
            )

        assert wait_for(lambda: pushed(template), timeout=10)

        twitchsim.set_stream(own_twitch.origin, live_b, 0, live=False)
        run_pulse(cfg, env, own_twitch, now + timedelta(minutes=1))

        assert images(cfg, company)[creators[live_b]]["preview_url"] is None
        assert wait_for(lambda: pushed(None), timeout=10)
    finally:
        client.close()


UNTRUSTED = [
    "https://evil.example/images/avatars/x.svg",
    "javascript:alert(1)",
    "data:image/svg+xml,<svg/>",
    "//evil.example/x.svg",
    "{origin_other_port}/images/avatars/x.svg",
    "{origin}@evil.example/x.svg",
    '{origin}/images/avatars/x.svg" onerror="alert(1)',
    "{origin}/images/avatars/x.svg)",
]


def test_image_urls_off_the_image_origin_are_never_stored(
    cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    now = datetime.now(UTC) + timedelta(days=50)
    broadcasters = POOL[3:5]
    company, creators = watching(cfg, "img-evil", broadcasters)
    other_port = f"http://127.0.0.1:{own_twitch.port + 1}"
    for bad in UNTRUSTED:
        url = bad.format(origin=own_twitch.origin, origin_other_port=other_port)
        own_twitch.control(
            "/control/users",
            {"login": f"c_{broadcasters[0]}", "user_id": broadcasters[0], "profile_image_url": url},
        )
        own_twitch.control(
            "/control/streams",
            {"user_id": broadcasters[1], "viewers": 5, "live": True, "thumbnail_url": url},
        )
        with db.connect(cfg) as conn, db.tenant_transaction(conn, company):
            conn.execute("UPDATE creators SET images_checked_at = NULL, profile_image_url = NULL")
        now += timedelta(minutes=1)

        report = run_pulse(cfg, env, own_twitch, now)

        assert report.failed == []
        rows = images(cfg, company)
        assert rows[creators[broadcasters[0]]]["profile_image_url"] is None, url
        assert rows[creators[broadcasters[0]]]["images_checked_at"] == now, url
        assert rows[creators[broadcasters[1]]]["preview_url"] is None, url
    # and an https URL on the default origin passes, http there does not
    default = settings.TWITCH_IMAGE_ORIGIN
    good = f"{default}/jtv_user_pictures/a-profile_image-300x300.png"
    assert trusted_image_url(good, default) == good
    assert trusted_image_url(good.replace("https:", "http:"), default) is None
    template = f"{default}/previews-ttv/live_user_a-{{width}}x{{height}}.jpg"
    assert trusted_image_url(template, default, template=True) == template
    assert trusted_image_url(template, default) is None  # braces only in a template


def test_a_tenant_reads_and_is_written_only_its_own_image_columns(
    cfg: settings.DatabaseSettings, env: dict[str, str], own_twitch: OwnTwitch
) -> None:
    now = datetime.now(UTC) + timedelta(days=60)
    mine, my_creators = watching(cfg, "img-mine", [POOL[6]])
    theirs, their_creators = watching(
        cfg, "img-theirs", [POOL[7]], checked_at=now - timedelta(hours=2), avatar=None
    )
    twitchsim.set_stream(own_twitch.origin, POOL[6], 9, login=f"c_{POOL[6]}")

    run_pulse(cfg, env, own_twitch, now)

    assert set(images(cfg, mine)) == {my_creators[POOL[6]]}
    assert images(cfg, mine)[my_creators[POOL[6]]]["preview_url"]
    (their_row,) = images(cfg, theirs).values()
    assert their_row["id"] == their_creators[POOL[7]]
    assert their_row["preview_url"] is None
    assert their_row["profile_image_url"] is None  # fresh (2 h): not asked again
    assert their_row["images_checked_at"] == now - timedelta(hours=2)
    # without a tenant the runtime role sees no creators at all
    with db.connect(cfg) as conn:
        assert conn.execute("SELECT count(*) AS n FROM creators").fetchone()["n"] == 0
