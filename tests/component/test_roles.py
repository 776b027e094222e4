"""Named roles (issue 28) over HTTP, as `python -m service` serves it: `WARDEN_TOKENS`' viewers read the
API and the dashboard, its operators (and `WARDEN_ADMIN_TOKEN`, the operator named admin) also change
something, recorded under their token's name; a page of another site is refused whatever credentials
its browser sends along; no token ever appears in an answer or a log line."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request

from service.api import auth
from service.api.cross_site import cross_site_refusal
from tests.support.cli import run_cli
from tests.support.settings import make_settings
from tests.support.web import Records, recorded_logs, serve_web
from workers.store.dead_letters import DeadLetter, find, keep

VIEWER, OPERATOR, ADMIN = "view-7Qm2-token", "oper-9Zx4-token", "admin-3Kp8-token"
TOKENS = f"vera:viewer:{VIEWER},\n otto:operator:{OPERATOR}"
LETTER = "webhook:EV_roles"
RETRY = f"/api/dead-letters/{LETTER}/retry"


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"anyone:{token}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Site:
    client: httpx.AsyncClient
    url: str
    engine: AsyncEngine
    logs: Records

    async def retried_by(self) -> str | None:
        letter = await find(self.engine, LETTER)
        assert letter is not None
        return letter.retried_by


@pytest.fixture
async def site(database_url: str, redis_url: str, engine: AsyncEngine) -> AsyncIterator[Site]:
    """Warden with a viewer, an operator and the admin token, and one dead letter to re-run."""
    await keep(engine, DeadLetter(LETTER, "apply_webhook", [{}, 1.0], None, None, "KeyError: x", 5, 1.0))
    settings = make_settings(
        database_url=database_url,
        redis_url=redis_url,
        warden_queue_name=f"test-roles:{uuid.uuid4().hex}",
        warden_tokens=TOKENS,
        warden_admin_token=ADMIN,
        warden_host="127.0.0.1",
    )
    with recorded_logs() as logs:
        async with serve_web(settings) as web, httpx.AsyncClient(base_url=web.url) as client:
            yield Site(client, web.url, engine, logs)
            await web.requests_done()


def _no_token_in(text: str) -> None:
    for token in (VIEWER, OPERATOR, ADMIN):
        assert token not in text


async def test_a_viewer_reads_but_may_not_act_and_an_operator_acts_under_its_name(site: Site) -> None:
    for path in ("/api/rooms", "/api/incidents", "/api/dead-letters", "/", "/dead-letters"):
        assert (await site.client.get(path, headers=bearer(VIEWER))).status_code == 200, path
        assert (await site.client.get(path, headers=basic(VIEWER))).status_code == 200, path
    rooms = await site.client.get("/", headers=basic(VIEWER))
    assert "signed in as vera (viewer)" in rooms.text
    assert "signed in as otto (operator)" in (await site.client.get("/", headers=basic(OPERATOR))).text
    refused = await site.client.post(RETRY, headers=bearer(VIEWER))
    assert refused.status_code == 403
    assert refused.json() == {"error": "vera is a viewer: this needs an operator's token (WARDEN_TOKENS)"}
    assert await site.retried_by() is None, "a viewer's POST changes nothing"

    done = await site.client.post(RETRY, headers=basic(OPERATOR))
    assert done.status_code == 200 and done.json()["retried_by"] == "otto"
    assert await site.retried_by() == "otto"
    listed = (await site.client.get("/api/dead-letters", headers=bearer(VIEWER))).json()["dead_letters"]
    assert [d["retried_by"] for d in listed] == ["otto"]
    again = await site.client.post(RETRY, headers=bearer(ADMIN))
    assert again.status_code == 409 and "by otto" in again.json()["error"]
    page = await site.client.get("/dead-letters", headers=basic(VIEWER))
    assert " by otto" in page.text
    _no_token_in(refused.text + done.text + again.text + page.text)


async def test_operator_buttons_are_shown_to_operators_only(site: Site) -> None:
    viewer = (await site.client.get("/dead-letters", headers=basic(VIEWER))).text
    operator = (await site.client.get("/dead-letters", headers=basic(OPERATOR))).text
    button = 'data-post="/api/dead-letters/webhook%3AEV_roles/retry"'
    assert button not in viewer and "data-post" not in viewer and 'id="action-result"' not in viewer
    assert button in operator and 'id="action-result"' in operator
    done = await site.client.post(
        "/api/dead-letters/webhook%3AEV_roles/retry",
        headers={**basic(OPERATOR), "Origin": site.url, "Sec-Fetch-Site": "same-origin"},
    )
    assert (done.status_code, await site.retried_by()) == (200, "otto"), "the button's own request"


async def test_the_admin_token_is_the_operator_named_admin(site: Site) -> None:
    done = await site.client.post(RETRY, headers=bearer(ADMIN))
    assert (done.status_code, await site.retried_by()) == (200, "admin")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        basic("wrong"),
        bearer(OPERATOR + "x"),
        bearer(OPERATOR[:-1]),
        {"Authorization": f"Token {OPERATOR}"},
        {"Authorization": "Basic !!!"},
    ],
    ids=["none", "bearer", "basic", "longer", "shorter", "scheme", "not-base64"],
)
async def test_a_missing_or_wrong_token_is_401_for_reads_and_actions(
    site: Site, headers: dict[str, str]
) -> None:
    for answer in (
        await site.client.get("/api/rooms", headers=headers),
        await site.client.post(RETRY, headers=headers),
    ):
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith("Basic")
        _no_token_in(answer.text)
    assert await site.retried_by() is None


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # this host, another port
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "SAME"},  # a browser's word on the origin wins
        {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
    ],
    ids=["origin", "null-origin", "other-port", "cross-site", "same-site", "fetch-site-wins", "origin-wins"],
)
async def test_another_sites_post_is_refused_even_with_an_operators_credentials(
    site: Site, browser: dict[str, str]
) -> None:
    headers = {k: site.url if v == "SAME" else v for k, v in browser.items()}
    refused = await site.client.post(RETRY, headers={**basic(OPERATOR), **headers})
    assert refused.status_code == 403 and "another site" in refused.json()["error"]
    assert "www-authenticate" not in refused.headers, "no browser prompt for credentials"
    assert await site.retried_by() is None, "refused: nothing changed"
    # Reads are not refused: another site can make a browser read, but not read what it answers.
    assert (
        await site.client.get("/api/dead-letters", headers={**basic(VIEWER), **headers})
    ).status_code == 200


@pytest.mark.parametrize("form", ["/maintenance", "/maintenance/1/end", "/incidents/I_1/ack"])
@pytest.mark.parametrize(
    "credentials", [{}, basic("wrong"), basic(OPERATOR)], ids=["none", "wrong", "operator"]
)
async def test_another_sites_form_post_is_403_before_its_credentials_are_read(
    site: Site, form: str, credentials: dict[str, str]
) -> None:
    """A dashboard form posted from another site: 403, never a 401 that would have the browser ask its
    user for credentials on that site's behalf; no window started."""
    headers = {**credentials, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    refused = await site.client.post(form, headers=headers, data={"agent": "*", "minutes": "30"})
    assert refused.status_code == 403 and "another site" in refused.text
    assert "www-authenticate" not in refused.headers
    listed = await site.client.get("/api/maintenance", headers=bearer(VIEWER))
    assert listed.json()["windows"] == []


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": "SAME", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "SAME"},  # an older browser
        {"Sec-Fetch-Site": "none"},  # the user's own doing
        {},  # curl, the CLI
    ],
    ids=["dashboard", "older-browser", "user", "no-browser"],
)
async def test_warden_s_own_pages_and_the_cli_may_act(site: Site, browser: dict[str, str]) -> None:
    headers = {k: site.url if v == "SAME" else v for k, v in browser.items()}
    done = await site.client.post(RETRY, headers={**basic(OPERATOR), **headers})
    assert (done.status_code, await site.retried_by()) == (200, "otto")


async def test_no_token_is_ever_logged(site: Site) -> None:
    for token in (VIEWER, OPERATOR, ADMIN, "wrong"):
        await site.client.get("/api/rooms", headers=bearer(token))
        await site.client.post(RETRY, headers=basic(token))
        await site.client.post(RETRY, headers={**bearer(token), "Origin": "https://evil.example"})
    lines = "\n".join(site.logs.lines(logging.DEBUG))
    assert "re-queued as" in lines and "by otto" in lines
    _no_token_in(lines)


async def test_the_cli_sends_warden_token_else_the_admin_token(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDEN_ADMIN_TOKEN", "not-this-one")
    monkeypatch.setenv("WARDEN_TOKEN", VIEWER)
    assert (await run_cli(capsys, "--url", site.url, "dead-letters"))[0] == 0
    code, out = await run_cli(capsys, "--url", site.url, "retry", LETTER)
    assert code == 1 and "vera is a viewer" in out and await site.retried_by() is None
    monkeypatch.setenv("WARDEN_TOKEN", OPERATOR)
    assert (await run_cli(capsys, "--url", site.url, "retry", LETTER))[0] == 0
    code, out = await run_cli(capsys, "--url", site.url, "dead-letters")
    assert code == 0 and "by otto" in out
    monkeypatch.delenv("WARDEN_TOKEN")
    assert "wrong token" in (await run_cli(capsys, "--url", site.url, "dead-letters"))[1]
    monkeypatch.setenv("WARDEN_ADMIN_TOKEN", ADMIN)
    assert (await run_cli(capsys, "--url", site.url, "dead-letters"))[0] == 0


def _request(origin: str, host: str, scheme: str = "http") -> Request:
    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "scheme": scheme})


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "same"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "http", True),
        ("http://Warden.Example.com", "warden.example.com", "http", True),
        ("http://warden.example.com:80", "warden.example.com", "http", True),
        ("https://warden.example.com", "warden.example.com", "https", True),
        ("https://warden.example.com", "warden.example.com:443", "https", True),
        ("http://[::1]:8000", "[::1]:8000", "http", True),
        # TLS ended at a proxy uvicorn does not trust with X-Forwarded-Proto: the page was https.
        ("https://warden.example.com", "warden.example.com", "http", True),
        ("http://warden.example.com", "warden.example.com", "https", False),  # an http page, https Warden
        ("https://warden.example.com.evil.example", "warden.example.com", "https", False),
        ("https://evil.example", "warden.example.com", "https", False),
        ("https://warden.example.com:8443", "warden.example.com", "https", False),
        ("http://127.0.0.1:8001", "127.0.0.1:8000", "http", False),
        ("null", "warden.example.com", "https", False),
        ("file://", "warden.example.com", "https", False),
        ("https://warden.example.com/path", "warden.example.com", "https", False),
        ("https://user@warden.example.com", "warden.example.com", "https", False),
        ("https://warden.example.com:99999", "warden.example.com", "https", False),
        ("https://warden.example.com", "", "https", False),
    ],
)
def test_what_counts_as_the_same_origin(origin: str, host: str, scheme: str, same: bool) -> None:
    assert (cross_site_refusal(_request(origin, host, scheme)) is None) == same


@pytest.mark.parametrize("token", [ADMIN, VIEWER, OPERATOR, "wrong"])
def test_every_configured_token_is_compared_whichever_matches(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early exit at the first match: the time taken says nothing of which token matched."""
    compared: list[bytes] = []

    def compare(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", compare)
    settings = make_settings(warden_tokens=TOKENS, warden_admin_token=ADMIN)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    request = Request({"type": "http", "headers": headers, "state": {"settings": settings}})
    refusal = auth.authenticate(request)
    assert compared == [t.digest for t in settings.access_tokens]
    assert (refusal is None) == (token != "wrong")
