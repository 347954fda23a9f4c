"""Who gets into the dashboard: bearer token or login session, never a token in the URL; the Host it answers to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any, TypeVar, cast

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.web.app import ACCESS, create_app
from gateway.web.auth import SESSION_COOKIE, Hosts, Sessions, Throttle

TOKEN = "operator-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTML = {"Accept": "text/html,application/xhtml+xml"}
T = TypeVar("T")


def dashboard(token: str | None = TOKEN, **options: Any) -> web.Application:
    # Only pages that read neither the orchestrator nor the metrics are requested here.
    return create_app(cast(Any, None), cast(Any, None), cast(Any, None), results_dir=None, token=token, **options)


def run(app: web.Application, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    async def go() -> T:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)
    return asyncio.run(go())


def session_cookie(response: aiohttp.ClientResponse) -> Any:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar.get(SESSION_COOKIE)


async def sign_in(client: TestClient[Any, Any], token: str = TOKEN, **headers: str) -> aiohttp.ClientResponse:
    response = await client.post("/login", data={"token": token}, headers=headers, allow_redirects=False)
    await response.read()
    return response


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_in_the_url_is_not_accepted() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.get(f"/api/benchmarks?token={TOKEN}")
        assert response.status == 401
        response = await client.get(f"/?token={TOKEN}", headers=HTML, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/login"
    run(dashboard(), scenario)


def test_bearer_token_opens_the_api_and_the_page() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/benchmarks", headers=BEARER)
        assert response.status == 200 and await response.json() == {"records": []}
        assert (await client.get("/", headers=BEARER)).status == 200
        assert (await client.get("/static/style.css", headers=BEARER)).status == 200
        assert (await client.get("/api/benchmarks", headers={"Authorization": "Bearer wrong-token-wrong"})).status == 401
        assert (await client.get("/api/benchmarks", headers={"Authorization": TOKEN})).status == 401
    run(dashboard(), scenario)


def test_without_credentials_scripts_are_told_how_and_browsers_go_to_the_login_page() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.get("/metrics")
        text = await response.text()
        assert response.status == 401 and "Authorization: Bearer" in text and "/login" in text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/static/vendor/chart.umd.min.js")).status == 401
        response = await client.get("/", headers=HTML, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/login"
        response = await client.get("/login", headers=HTML)
        page = await response.text()
        assert response.status == 200 and 'name="token"' in page and 'method="post"' in page
        assert (await client.get("/healthz")).status == 200
    run(dashboard(), scenario)


def test_login_sets_a_strict_http_only_session_cookie_that_opens_the_dashboard() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await sign_in(client)
        assert response.status == 303 and response.headers["Location"] == "/"
        cookie = session_cookie(response)
        assert cookie is not None and len(cookie.value) >= 43  # 32 random bytes, base64
        assert cookie["httponly"] is True and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert not cookie["secure"]  # plain HTTP here; test_https checks the Secure flag
        assert int(cookie["max-age"]) == 12 * 3600
        response = await client.get("/api/benchmarks")
        assert response.status == 200
        page = await (await client.get("/", headers=HTML)).text()
        assert '<form id="logout" method="post"' in page
    run(dashboard(), scenario)


def test_each_login_gets_its_own_session() -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[str, str]:
        return session_cookie(await sign_in(client)).value, session_cookie(await sign_in(client)).value

    first, second = run(dashboard(), scenario)
    assert first != second


def test_logout_forgets_the_session() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        value = session_cookie(await sign_in(client)).value
        response = await client.post("/logout", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/login"
        assert session_cookie(response).value == ""
        client.session.cookie_jar.clear()
        response = await client.get("/api/benchmarks", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
        assert response.status == 401
    run(dashboard(), scenario)


def test_a_forged_or_unknown_cookie_is_refused() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/benchmarks", headers={"Cookie": f"{SESSION_COOKIE}={'A' * 43}"})
        assert response.status == 401
    run(dashboard(), scenario)


def test_a_wrong_token_gets_401_and_the_form_again_with_a_message() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await sign_in(client, "wrong-token-wrong-token")
        page = await response.text()
        assert response.status == 401 and "not the operator token" in page and 'name="token"' in page
        assert session_cookie(response) is None
        assert (await client.get("/api/benchmarks")).status == 401
        response = await client.post("/login", data={}, allow_redirects=False)
        assert response.status == 401
    run(dashboard(), scenario)


def test_guessing_the_token_is_throttled_for_everyone_for_the_rest_of_the_minute() -> None:
    clock = FakeClock()
    app = dashboard()
    app[ACCESS].throttle = Throttle(clock=clock)

    async def attack(client: TestClient[Any, Any]) -> None:
        operator = session_cookie(await sign_in(client)).value
        client.session.cookie_jar.clear()
        # Ten guesses in the first minute, some at the form and some as bearer tokens.
        for i in range(5):
            assert (await sign_in(client, f"guess-{i:020d}")).status == 401
            clock.now += 1
        for i in range(5, 10):
            response = await client.get("/metrics", headers={"Authorization": f"Bearer guess-{i:020d}"})
            assert response.status == 401
            clock.now += 1
        # The eleventh is not even compared: the right token is answered like a wrong one.
        response = await sign_in(client)
        assert response.status == 429 and session_cookie(response) is None
        assert int(response.headers["Retry-After"]) == 50
        assert "try again" in await response.text()
        response = await client.get("/api/benchmarks", headers=BEARER)
        assert response.status == 429 and int(response.headers["Retry-After"]) == 50
        # A session opened before the attack keeps working.
        response = await client.get("/api/benchmarks", headers={"Cookie": f"{SESSION_COOKIE}={operator}"})
        assert response.status == 200
        clock.now += 49
        assert (await sign_in(client)).status == 429
        clock.now += 1
        response = await sign_in(client)
        assert response.status == 303 and session_cookie(response) is not None

    run(app, attack)


def test_concurrent_guesses_cannot_slip_past_the_count() -> None:
    app = dashboard()

    async def attack(client: TestClient[Any, Any]) -> None:
        responses = await asyncio.gather(*(sign_in(client, f"guess-{i:020d}") for i in range(30)))
        assert sorted(r.status for r in responses) == [401] * 10 + [429] * 20

    run(app, attack)


def test_a_login_posted_from_another_site_is_refused() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for origin in ("http://evil.example", "null", f"https://{client.host}:{client.port}"):
            response = await sign_in(client, Origin=origin)
            assert response.status == 403, origin
            assert session_cookie(response) is None
        response = await sign_in(client, Origin=f"http://{client.host}:{client.port}")
        assert response.status == 303 and session_cookie(response) is not None
        response = await client.post("/logout", headers={"Origin": "http://evil.example"}, allow_redirects=False)
        assert response.status == 403
        assert (await client.get("/api/benchmarks")).status == 200
    run(dashboard(), scenario)


def test_an_unknown_host_name_is_refused_and_told_which_flag_to_add() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for path in ("/api/benchmarks", "/healthz", "/login"):
            response = await client.get(path, headers={**BEARER, "Host": f"evil.example:{client.port}"})
            assert response.status == 421, path
            assert "--http-host evil.example" in await response.text()
        response = await client.post("/login", data={"token": TOKEN}, headers={"Host": "evil.example"})
        assert response.status == 421 and session_cookie(response) is None
    run(dashboard(), scenario)


def test_known_host_names_are_answered() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        for host in ("localhost", f"localhost:{client.port}", f"127.0.0.1:{client.port}", f"[::1]:{client.port}",
                     "dash.example", "DASH.example.:8443"):
            response = await client.get("/api/benchmarks", headers={**BEARER, "Host": host})
            assert response.status == 200, host
        assert (await client.get("/healthz", headers={"Host": "other.example"})).status == 421
    run(dashboard(allowed_hosts=["dash.example"]), scenario)


def test_the_served_address_is_a_known_host() -> None:
    hosts = Hosts()
    assert not hosts.allows("10.0.0.5:8080") and not hosts.allows("gw.example")
    hosts.serve("10.0.0.5")
    hosts.serve("gw.example")
    assert hosts.allows("10.0.0.5:8080") and hosts.allows("gw.example:8080") and hosts.allows("127.0.0.1")
    assert not hosts.allows("10.0.0.6:8080") and not hosts.allows("evil.example")

    wildcard = Hosts()
    wildcard.serve("0.0.0.0")
    # An address cannot be rebound to another site; only names need the list.
    assert wildcard.allows("192.168.1.20:8080") and wildcard.allows("[fe80::1]")
    assert not wildcard.allows("evil.example:8080") and not wildcard.allows("")


def test_without_a_token_the_dashboard_is_open_and_has_no_login() -> None:
    async def scenario(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/api/benchmarks")).status == 200
        response = await client.get("/login", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/"
        response = await sign_in(client)
        assert response.status == 303 and session_cookie(response) is None
        page = await (await client.get("/")).text()
        assert '<form id="logout" hidden' in page
        assert (await client.get("/", headers={"Host": "evil.example"})).status == 421
    run(dashboard(token=None), scenario)


def test_sessions_expire_and_stay_bounded() -> None:
    clock = FakeClock()
    sessions = Sessions(ttl_s=100, limit=3, clock=clock)
    first = sessions.open()
    assert sessions.valid(first)
    clock.now += 100
    assert not sessions.valid(first) and len(sessions) == 0
    opened = [sessions.open() for _ in range(5)]
    assert len(sessions) == 3
    assert [sessions.valid(v) for v in opened] == [False, False, True, True, True]
    sessions.close(opened[-1])
    assert not sessions.valid(opened[-1])
