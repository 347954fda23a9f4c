"""Who may read the dashboard: the host name it is asked for, then a bearer token or a login session.

The operator token never travels in a URL (browser history, proxy logs and
Referer headers keep URLs); browsers trade it once, on the login form, for a
session cookie that page scripts cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "wharf_session"
SESSION_TTL_S = 12 * 3600
MAX_SESSIONS = 256
THROTTLE_TRIES = 10
THROTTLE_WINDOW_S = 60.0
# /logout only forgets the cookie it is sent, so an expired session can still sign out.
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Clock = Callable[[], float]


def host_name(header: str) -> str:
    """The name in a Host header, without port, brackets, case or the root dot."""
    header = header.strip().lower()
    if header.startswith("["):
        name = header[1:].partition("]")[0]
    elif header.count(":") == 1:
        name = header.partition(":")[0]
    else:
        name = header
    return name.rstrip(".")


class Hosts:
    """The host names the dashboard answers to.

    A DNS-rebinding page reaches a loopback dashboard under the attacker's own
    name, so a name nobody configured is refused. An IP literal cannot be
    rebound, hence loopback addresses always pass and any address passes on a
    wildcard bind, where the served addresses are not known in advance.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._names = {"localhost"}
        self._any_address = False
        for name in allowed:
            self.serve(name)

    def serve(self, host: str) -> None:
        """Answer to ``host`` too: a name, an address, or a wildcard bind address."""
        name = host.strip().strip("[]").lower().rstrip(".")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            if name:
                self._names.add(name)
            return
        if address.is_unspecified:
            self._any_address = True
        else:
            self._names.add(str(address))

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if name in self._names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self._any_address or str(address) in self._names


class Sessions:
    """Browser sessions: random cookie values with an expiry, held in memory and bounded.

    Entries are keyed by a digest of the cookie so that a lookup never
    compares secret bytes; a restart signs everyone out.
    """

    def __init__(self, ttl_s: float = SESSION_TTL_S, limit: int = MAX_SESSIONS, clock: Clock = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._clock = clock
        self._expiry: dict[bytes, float] = {}

    @staticmethod
    def _key(value: str) -> bytes:
        return hashlib.sha256(value.encode("utf-8", "replace")).digest()

    def open(self) -> str:
        value = secrets.token_urlsafe(32)
        now = self._clock()
        for key in [k for k, t in self._expiry.items() if t <= now]:
            del self._expiry[key]
        while len(self._expiry) >= self.limit:
            # Insertion order is age order: the oldest session makes room.
            del self._expiry[next(iter(self._expiry))]
        self._expiry[self._key(value)] = now + self.ttl_s
        return value

    def valid(self, value: str) -> bool:
        key = self._key(value)
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._expiry[key]
            return False
        return True

    def close(self, value: str) -> None:
        self._expiry.pop(self._key(value), None)

    def __len__(self) -> int:
        return len(self._expiry)


class Throttle:
    """At most ``tries`` wrong tokens per window, counted over every client.

    Counting globally rather than per address means that spreading guesses
    over many machines gains nothing; the price is that during an attack the
    operator, too, waits out the window (open sessions keep working).
    """

    def __init__(self, tries: int = THROTTLE_TRIES, window_s: float = THROTTLE_WINDOW_S,
                 clock: Clock = time.monotonic) -> None:
        self.tries = tries
        self.window_s = window_s
        self._clock = clock
        self._start = -math.inf
        self._failures = 0

    def retry_after(self) -> float:
        """Seconds until tokens are compared again; 0 when they are compared now."""
        left = self._start + self.window_s - self._clock()
        return left if self._failures >= self.tries and left > 0 else 0.0

    def failed(self) -> None:
        now = self._clock()
        if now - self._start >= self.window_s:
            self._start, self._failures = now, 0
        self._failures += 1


def same_token(given: str, token: str) -> bool:
    # Digests first: compare_digest is constant-time only for equal lengths.
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "replace")).digest(),
                               hashlib.sha256(token.encode("utf-8", "replace")).digest())


def same_origin(request: web.Request) -> bool:
    """True unless the browser says the request comes from another site's page."""
    origin = request.headers.get("Origin")
    return origin is None or origin.lower() == f"{request.scheme}://{request.host}".lower()


def wants_html(request: web.Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


class Access:
    """Host check, authentication middleware and the login/logout handlers of one dashboard."""

    def __init__(self, token: str | None, allowed_hosts: Iterable[str] = ()) -> None:
        self.token = token
        self.hosts = Hosts(allowed_hosts)
        self.sessions = Sessions()
        self.throttle = Throttle()
        self._login_page = (STATIC / "login.html").read_text(encoding="utf-8")

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        app.router.add_get("/login", self.login_form)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)

    def _check_bearer(self, given: str) -> bool:
        wait = self.throttle.retry_after()
        if wait:
            raise web.HTTPTooManyRequests(
                text=f"too many wrong tokens; try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))})
        if same_token(given, self.token or ""):
            return True
        self.throttle.failed()
        return False

    def authenticated(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self._check_bearer(given.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and self.sessions.valid(cookie)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if not self.hosts.allows(host):
            name = host_name(host)[:100] or "(none)"
            raise web.HTTPMisdirectedRequest(
                text=f"this dashboard does not answer to the host name {name!r}: if operators reach it "
                     f"under that name, start the gateway with --http-host {name}")
        if self.token and request.path not in OPEN_PATHS and not self.authenticated(request):
            if wants_html(request):
                raise web.HTTPSeeOther("/login")
            raise web.HTTPUnauthorized(
                text="the dashboard needs the operator token: send 'Authorization: Bearer <token>', "
                     "or sign in at /login for a browser session",
                headers={"WWW-Authenticate": 'Bearer realm="wharf dashboard"'})
        response = await handler(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # No framing: another site could otherwise overlay the sign-in and sign-out buttons.
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def _page(self, message: str = "", status: int = 200) -> web.Response:
        shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
        return web.Response(text=self._login_page.replace("<!--message-->", shown),
                            content_type="text/html", status=status)

    async def login_form(self, _: web.Request) -> web.StreamResponse:
        if not self.token:
            raise web.HTTPSeeOther("/")
        return self._page()

    async def login(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            # Otherwise another site could sign a browser in to a session of its choosing.
            raise web.HTTPForbidden(text="a sign-in must come from this dashboard's own login page")
        if not self.token:
            raise web.HTTPSeeOther("/")
        form = await request.post()
        # Checked after the body is read, with no await before the comparison,
        # so concurrent guesses cannot all slip past the count.
        wait = self.throttle.retry_after()
        if wait:
            response = self._page(f"Too many wrong tokens; try again in {math.ceil(wait)} s.", status=429)
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        given = form.get("token")
        if not isinstance(given, str) or not same_token(given, self.token):
            self.throttle.failed()
            return self._page("That is not the operator token.", status=401)
        response = web.Response(status=303, headers={"Location": "/"})
        response.set_cookie(SESSION_COOKIE, self.sessions.open(), max_age=int(self.sessions.ttl_s), path="/",
                            httponly=True, samesite="Strict", secure=request.secure)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            raise web.HTTPForbidden(text="a sign-out must come from this dashboard's own page")
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            self.sessions.close(cookie)
        response = web.Response(status=303, headers={"Location": "/login"})
        response.del_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict", secure=request.secure)
        return response
