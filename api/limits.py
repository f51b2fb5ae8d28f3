"""Refuse requests no handler should see, before any reads them (problem+json):

- bodies over the limit (413): payment requests are a few hundred bytes; a megabyte body is an
  attack or a bug, and reading it would cost memory in every API replica;
- control characters (NUL, ...) in the path or query string (400): no id or filter has them,
  and PostgreSQL refuses NUL in text, which would otherwise surface as a 500 from whichever
  handler passed the id on; nor integers beyond 64 bits in a path segment or query value (an id,
  a cursor, a limit), which PostgreSQL's bigint cannot take;
- JSON bodies nested deeper than a payment needs, strings with NUL, and integers beyond 64 bits
  anywhere in them (400): a payment body is a few levels deep; whatever field they reach,
  these would fail in the parser's recursion or in PostgreSQL.
"""

import json
import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_BIG_INTEGER = re.compile(rb"(?:^|[/=&])[-+]?0*\d{20,}(?:$|[/&])")
INT64 = (-(2**63), 2**63 - 1)
JSON_MAX_DEPTH = 16
# Uploads whose handler streams the body and enforces its own limit (api/routers/recon.py): a
# report file is megabytes, and reading it here would hold it in memory.
STREAMED_PATHS = frozenset({"/v1/recon/runs/upload"})


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
            if _BIG_INTEGER.search(unquote_to_bytes(path)) or _BIG_INTEGER.search(
                unquote_to_bytes(query)
            ):
                body = _problem(
                    400,
                    "number_out_of_range",
                    "Number out of range",
                    "an integer in the path or query string is beyond 64 bits",
                )
                await _send_problem(send, 400, body)
                return
        await self.app(scope, receive, send)


def json_problem(
    document: object, *, max_depth: int = JSON_MAX_DEPTH, nul_allowed: bool = False
) -> str | None:
    """Why this parsed JSON is refused, or None: walked without recursion."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and "\x00" in key and not nul_allowed:
                    return "a field name holds a NUL character"
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            if "\x00" in value and not nul_allowed:
                return "a string holds a NUL character"
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not INT64[0] <= value <= INT64[1]
        ):
            return "an integer is beyond 64 bits"
    return None


class JsonBodyGuard:
    """Reads a JSON body once (it is already bounded by `BodySizeLimit`), refuses what no handler
    can take (`json_problem`), and replays it to the handler unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", [])) if scope["type"] == "http" else {}
        if b"json" not in headers.get(b"content-type", b"") or scope.get("path") in STREAMED_PATHS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        why: str | None = None
        try:
            # A provider's callback is verified on its raw bytes first and answers its own
            # precise 400 for what it cannot take; only its shape is bounded here.
            webhook = str(scope.get("path", "")).startswith("/v1/webhooks/")
            why = json_problem(json.loads(body), nul_allowed=webhook) if body.strip() else None
        except RecursionError:
            why = f"nested deeper than {JSON_MAX_DEPTH} levels"
        except ValueError:
            why = None  # not JSON: the handler answers its own 422
        if why is not None:
            await _send_problem(send, 400, _problem(400, "invalid_json", "Invalid JSON", why))
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}]), send)


def _replay(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in STREAMED_PATHS:
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
