"""Refuse requests no handler should see, before any reads them (problem+json):

- bodies over the limit (413): payment requests are a few hundred bytes; a megabyte body is an
  attack or a bug, and reading it would cost memory in every API replica;
- control characters (NUL, ...) in the path or query string (400): no id or filter has them,
  and PostgreSQL refuses NUL in text, which would otherwise surface as a 500 from whichever
  handler passed the id on.
"""

import json
import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _problem(status: int, code: str, title: str, detail: str) -> bytes:
    return json.dumps(
        {
            "type": f"https://docs.kzpay.example/errors/{code}",
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()


async def _send_problem(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ControlCharacters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            query = scope.get("query_string", b"")
            if _CONTROL.search(unquote_to_bytes(path)) or _CONTROL.search(
                unquote_to_bytes(query.replace(b"+", b" "))
            ):
                body = _problem(
                    400,
                    "invalid_characters",
                    "Invalid characters",
                    "the path or query string holds a control character (such as NUL)",
                )
                await _send_problem(send, 400, body)
                return
        await self.app(scope, receive, send)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not refused:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    # The handler sees the client go away; whatever it answers is dropped.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        detail = f"request bodies are limited to {self.max_bytes} bytes"
        body = _problem(413, "payload_too_large", "Payload too large", detail)
        await _send_problem(send, 413, body)
