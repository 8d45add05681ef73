"""Guards at the HTTP level: a per-connection read timeout for uvicorn, and, without keys, the host names and
sites the service answers (`SiteGuard`).

A request's head (request line and headers) must arrive within a time limit,
on a new connection and after each answer on a kept-alive one.

uvicorn bounds the wait between requests (`timeout_keep_alive`) only while
no byte arrives: a client that sends half a request line and stalls, or that
keeps dripping a body the route never read, holds its connection for ever.
The service bounds the bodies it reads itself (`read_timeout_s`,
`body_timeout_s`); this bounds the rest, so every connection that is not
being answered costs at most `head_timeout_s`.
"""

import asyncio
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol


class _HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request head is overdue."""

    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: Optional[asyncio.TimerHandle] = None
        self._awaited_after: Any = None
        super().connection_made(transport)
        self._await_head()

    def _await_head(self) -> None:
        """Starts the clock for the next request head: it is overdue if no new request has begun in time."""
        self._cancel_head_timer()
        self._awaited_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_overdue)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.cycle is self._awaited_after and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._awaited_after:
            self._cancel_head_timer()  # a request head arrived: its route bounds the rest

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._await_head()  # before uvicorn starts any pipelined request, which cancels it
        super().on_response_complete()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)


def head_timeout_protocol(head_timeout_s: float) -> type:
    """uvicorn's `http` protocol class with a request head timeout of `head_timeout_s`."""
    return type("HeadTimeoutProtocol", (_HeadTimeoutProtocol,), {"head_timeout_s": head_timeout_s})


# Methods that change nothing: a page on another site may send them (and cannot read the answers: no CORS).
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(authority: str) -> str:
    """The host of a `Host` header or an origin's authority, without its port or IPv6 brackets, lower case."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


class SiteGuard:
    """For a service without keys: answers only requests whose `Host` it is allowed to go by (DNS rebinding
    points a foreign name at 127.0.0.1, and the browser then lets that site read the answers), and refuses a
    state-changing request that a page of another site sent (its `Origin` or `Sec-Fetch-Site` says so).

    Clients that are not browsers send no `Origin`, so the command line and scripts are untouched.
    """

    def __init__(self, app: Any, hosts: Sequence[str]):
        self.app = app
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope["method"], Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> Optional[JSONResponse]:
        refused = site_refusal(self.hosts, headers, changes_state=method not in SAFE_METHODS)
        if refused == BAD_HOST:
            message = "this service does not answer to that host name (start it with --allowed-hosts to add one)"
            return _refused(BAD_HOST, message, 400)
        if refused == CROSS_ORIGIN:
            return _refused(CROSS_ORIGIN, "a page of another site may not send this request", 403)
        return None


BAD_HOST = "bad_host"
CROSS_ORIGIN = "cross_origin"


def site_refusal(hosts: frozenset, headers: Headers, changes_state: bool) -> Optional[str]:
    """Why the site guard refuses a request without keys: `bad_host` (a `Host` it may not answer), or, for a
    request that changes state (a WebSocket too), `cross_origin` (a page of another site sent it); else None."""
    host = headers.get("host", "")
    if "*" not in hosts and host_name(host) not in hosts:
        return BAD_HOST
    if not changes_state:
        return None
    origin = headers.get("origin")
    cross_site = headers.get("sec-fetch-site") == "cross-site"
    if cross_site or (origin is not None and urlsplit(origin).netloc.lower() != host.strip().lower()):
        return CROSS_ORIGIN
    return None


def _refused(kind: str, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": {"kind": kind, "message": message}}, status_code=status)


# The page's policy: its own scripts and styles only, face thumbnails as data: images, the uploaded file read back
# by the browser itself as a blob: (the frame under a face's map), no framing by any site.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI and ReDoc from jsdelivr and start them with an inline script.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PAGES = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds to every response, errors included: a Content-Security-Policy (no foreign scripts, no framing),
    `nosniff` (an answer is never run as another type than it says), `X-Frame-Options` for older browsers
    and no Referer, so no other site frames the page or reads a URL of it."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"] in DOCS_PAGES else PAGE_POLICY
        added = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
