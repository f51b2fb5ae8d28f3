"""How a simulated provider fails: an error answer (`SimulatorError`, in each provider's own error
format) or no answer at all (`DropConnection`: the connection is closed before a single byte of
the response is written, as when a load balancer or the provider's process dies mid-request).
"""

import asyncio
import contextlib
from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send


class SimulatorError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


class DropConnection(Exception):
    """Raised by an endpoint: close the client's connection without answering."""


class _Closable(Protocol):
    def close(self) -> None: ...


class DropConnectionMiddleware:
    """Turns `DropConnection` into a connection closed with no HTTP answer.

    ASGI gives an application no way to abort a connection, so this reaches the server's
    transport through uvicorn's `receive` (a bound method of its request cycle, which holds the
    transport), closes it before anything was written, then waits for uvicorn to notice the
    disconnect so that it does not try to send a 500 of its own. The client sees the server hang
    up without a response: httpx raises `RemoteProtocolError` ("Server disconnected without
    sending a response"), a read-side error, never a connect error and never a status code.
    Served by anything else than uvicorn, the exception propagates (a 500, loudly).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except DropConnection:
            transport: _Closable | None = getattr(
                getattr(receive, "__self__", None), "transport", None
            )
            if transport is None:
                raise
            transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while (await receive())["type"] != "http.disconnect":
                        pass
