"""Signed callbacks to the merchant's webhook URL, with the misbehaviour real providers show:
delayed, duplicated, lost, out of order, re-sent. Failed deliveries are retried a few times.

Every event carries an id (`event_id`, written in each provider's own field: `eventId`,
`notification_id`, `id`...). A retry after a failed delivery keeps the id; `callback_duplicate`
sends a second event (another id); `callback_same_event_repeat` re-sends the delivered request
itself, byte for byte (same id, same body, same signature headers).
"""

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from providers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from simulator.behaviour import Behaviour

# (secret, event) -> (body, headers): how a provider writes and signs its callback
Encoder = Callable[[str, dict[str, Any]], tuple[bytes, dict[str, str]]]


def common_callback(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The common format: the event as JSON, `X-Signature` over `{unix seconds}.{body}`."""
    body = json.dumps({k: v for k, v in event.items() if k != "ordered_amount"}).encode()
    stamp = int(time.time())
    return body, {
        "content-type": "application/json",
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: str(stamp),
    }


class CallbackSender:
    def __init__(self, secret_of: Callable[[str], str]) -> None:
        self._secret_of = secret_of
        self._http = httpx.AsyncClient(timeout=5.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent: list[dict[str, Any]] = []  # what was delivered, for the admin API

    def notify(
        self,
        provider: str,
        url: str | None,
        event: dict[str, Any],
        behaviour: Behaviour,
        *,
        encode: Encoder | None = None,
    ) -> None:
        """Schedule delivery of `event` (a payment's new state) as the behaviour says."""
        if not url or behaviour.callback_lost or behaviour.outage:
            return
        events = [event]
        if behaviour.callback_duplicate:
            events.append(event)
        if behaviour.callback_out_of_order:
            events.append({**event, "status": "processing"})
        task = asyncio.create_task(
            self._deliver(
                provider,
                url,
                events,
                behaviour.callback_delay_ms / 1000,
                encode or common_callback,
                behaviour.callback_same_event_repeat,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        provider: str,
        url: str,
        events: list[dict[str, Any]],
        delay: float,
        encode: Encoder,
        repeat: int = 0,
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        for event in events:
            event_id = f"evt_{secrets.token_hex(8)}"
            stamped = {**event, "event_id": event_id, "sent_at": datetime.now(UTC).isoformat()}
            record = {"provider": provider, "url": url, **event, "event_id": event_id}
            signed = encode(self._secret_of(provider), stamped)
            for backoff in (0.5, 1.0, 2.0, None):
                if await self._post(url, *signed):
                    self.sent.append(record)
                    break
                if backoff is None:
                    break
                await asyncio.sleep(backoff)
                signed = encode(self._secret_of(provider), stamped)  # fresh timestamp
            for _ in range(repeat):  # the same request again, byte for byte
                if await self._post(url, *signed):
                    self.sent.append({**record, "repeat": True})

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.status_code < 500

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._http.aclose()
