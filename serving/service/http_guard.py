"""A per-connection read timeout for uvicorn: a request's head (request line and headers) must arrive
within a time limit, on a new connection and after each answer on a kept-alive one.

uvicorn bounds the wait between requests (`timeout_keep_alive`) only while
no byte arrives: a client that sends half a request line and stalls, or that
keeps dripping a body the route never read, holds its connection for ever.
The service bounds the bodies it reads itself (`read_timeout_s`,
`body_timeout_s`); this bounds the rest, so every connection that is not
being answered costs at most `head_timeout_s`.
"""

import asyncio
from typing import Any, Optional

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
