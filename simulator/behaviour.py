"""Runtime-settable misbehaviour of one simulated provider.

Set with `PUT /admin/providers/{name}/behaviour` (payments, charges) or
`PUT /admin/payouts/{name}/behaviour` (that provider's payout desk), read back with `GET` on the
same paths. A PUT replaces the whole behaviour: knobs left out take their defaults. Unknown knobs
are refused (422), so a typo never silently tests nothing. `*_next` counters are consumed by the
calls they apply to; the GET shows what is left.
"""

import asyncio
import random
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.faults import DropConnection, SimulatorError

UnknownCancel = Literal["not_found", "tombstone"]

_ERROR_CODES = {500: "internal_error", 502: "bad_gateway", 504: "gateway_timeout"}


class Behaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(
        default=0, ge=0, le=60_000, description="added to every provider call (ms)"
    )
    latency_jitter_ms: int = Field(
        default=0, ge=0, le=60_000, description="a random extra latency up to this (ms)"
    )
    decline_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of charges / payments / payouts declined"
    )
    error_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of charge / payment-create / payout calls answered 503 before "
        "anything is processed",
    )
    timeout_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of those calls processed, then answered after timeout_seconds",
    )
    timeout_seconds: float = Field(
        default=30.0, ge=0, le=600, description="how late a late answer or a held request is"
    )
    fail_next: int = Field(default=0, ge=0, description="the next N charge calls answer 503")
    timeout_next: int = Field(
        default=0, ge=0, description="the next N charge calls are processed but answer too late"
    )
    late_next: int = Field(
        default=0,
        ge=0,
        description="the next N charge calls are held for timeout_seconds before the acquirer "
        "sees them (a request stuck in the network): the caller times out, an inquiry finds "
        "nothing, and the request arrives later",
    )
    outage: bool = Field(default=False, description="every provider endpoint answers 503")
    callback_lost: bool = Field(default=False, description="callbacks are never sent")
    callback_duplicate: bool = Field(
        default=False,
        description="each callback is sent twice (the copy is a new event: another event id)",
    )
    callback_out_of_order: bool = Field(
        default=False, description="a stale 'processing' callback follows the final one"
    )
    callback_delay_ms: int = Field(
        default=0, ge=0, le=600_000, description="callbacks leave this long after the change"
    )
    # -- adversarial knobs: what real acquirers, wallets and banks do -------------------------
    error_after_processing_next: int = Field(
        default=0,
        ge=0,
        description="the next N charge / payment-create / payout calls are PROCESSED (stored; "
        "a card charged, a payout paid) and then answered with error_after_processing_status: "
        "the caller cannot tell whether money moved",
    )
    error_after_processing_status: Literal[500, 502, 504] = Field(
        default=502, description="the status of those answers: 500, 502 or 504"
    )
    reset_after_processing_next: int = Field(
        default=0,
        ge=0,
        description="the next N charge / payment-create / payout calls are PROCESSED, then the "
        "connection is closed without any HTTP answer (the client sees the server disconnect "
        "without a response: a read / protocol error, not a connect error)",
    )
    unknown_cancel: UnknownCancel = Field(
        default="not_found",
        description="a cancel (void, withdraw, close) of a reference this provider never saw: "
        "'not_found' answers 404 and records nothing, so a request still in flight under that "
        "reference is processed when it lands (what real acquirers do); 'tombstone' records "
        "the reference as cancelled and refuses any later request under it. Default "
        "'not_found', except payout desks, which keep 'tombstone' unless told otherwise",
    )
    throttle_next: int = Field(
        default=0,
        ge=0,
        description="the next N calls to any endpoint of this provider (including status "
        "inquiries and cancels) answer 429 with a Retry-After header",
    )
    throttle_retry_after_seconds: int = Field(
        default=1, ge=0, le=3600, description="the Retry-After of those 429 answers (seconds)"
    )
    expire_credentials_next: int = Field(
        default=0,
        ge=0,
        description="the next N authenticated calls answer 401 token_expired although the API "
        "key is right (as when a provider rotates or expires credentials)",
    )
    token_expiry_seconds: int | None = Field(
        default=None,
        ge=0,
        description="the simulated providers have no OAuth token endpoint (static API keys): "
        "when set, the credentials count as expired this many seconds after this behaviour "
        "was set, and every authenticated call answers 401 token_expired until the behaviour "
        "is set again (a token the platform failed to refresh); null: never",
    )
    callback_same_event_repeat: int = Field(
        default=0,
        ge=0,
        le=20,
        description="each callback is delivered N extra times with the SAME event id and the "
        "byte-identical signed body and headers (a provider re-sending after a lost ack)",
    )
    late_success_after_expiry: bool = Field(
        default=False,
        description="asynchronous payments (bank transfer, wallet, bank app push, QR, "
        "aggregator checkout) that expire or are cancelled while pending are nevertheless "
        "reported paid afterwards: status succeeded and a success callback (the payer paid at "
        "the last moment; the provider reports payments after the order expired). The payer "
        "page also accepts a payment of an expired or cancelled order",
    )
    late_success_delay_ms: int = Field(
        default=0,
        ge=0,
        le=600_000,
        description="how long after the expiry or cancel that late success happens (ms)",
    )
    payout_processing_seconds: float = Field(
        default=0.0,
        ge=0,
        le=86_400,
        description="payouts answer and inquire 'processing' for this long before they become "
        "paid (or failed); 0: final at once. Set on the payout desk: "
        "PUT /admin/payouts/{name}/behaviour",
    )


class BehaviourState:
    """The live behaviour plus the one-shot counters it consumes."""

    def __init__(self, seed: int | None = None, *, defaults: dict[str, Any] | None = None) -> None:
        self._defaults = defaults or {}
        self._random = random.Random(seed)
        self.behaviour = Behaviour()

    @property
    def behaviour(self) -> Behaviour:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, value: Behaviour) -> None:
        """Knobs the caller did not set take this provider's defaults."""
        unset = {k: v for k, v in self._defaults.items() if k not in value.model_fields_set}
        self._behaviour = value.model_copy(update=unset) if unset else value
        self.set_at = time.monotonic()

    async def delay(self) -> None:
        b = self.behaviour
        jitter = self._random.uniform(0, b.latency_jitter_ms) if b.latency_jitter_ms else 0
        if b.latency_ms or jitter:
            await asyncio.sleep((b.latency_ms + jitter) / 1000)

    def admit(self, name: str) -> None:
        """The gateway's checks once the API key is right: outage, expired credentials,
        throttling, in that order (each consuming its own counter only when it answers)."""
        b = self.behaviour
        if b.outage:
            raise SimulatorError(503, "outage", f"{name} is down")
        if b.expire_credentials_next > 0:
            b.expire_credentials_next -= 1
            raise SimulatorError(401, "token_expired", "credentials expired")
        expiry = b.token_expiry_seconds
        if expiry is not None and time.monotonic() - self.set_at >= expiry:
            raise SimulatorError(401, "token_expired", "credentials expired")
        if b.throttle_next > 0:
            b.throttle_next -= 1
            seconds = b.throttle_retry_after_seconds
            raise SimulatorError(
                429,
                "rate_limited",
                f"too many requests, retry after {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    def after_processing(self) -> None:
        """Called once a charge, payment or payout was processed: answer it, or not."""
        b = self.behaviour
        if b.reset_after_processing_next > 0:
            b.reset_after_processing_next -= 1
            raise DropConnection
        if b.error_after_processing_next > 0:
            b.error_after_processing_next -= 1
            status = b.error_after_processing_status
            raise SimulatorError(status, _ERROR_CODES[status], "upstream error after processing")

    def take_failure(self) -> bool:
        if self.behaviour.fail_next > 0:
            self.behaviour.fail_next -= 1
            return True
        return self._random.random() < self.behaviour.error_rate

    def take_timeout(self) -> bool:
        if self.behaviour.timeout_next > 0:
            self.behaviour.timeout_next -= 1
            return True
        return self._random.random() < self.behaviour.timeout_rate

    def take_late(self) -> bool:
        if self.behaviour.late_next > 0:
            self.behaviour.late_next -= 1
            return True
        return False

    def roll_decline(self) -> bool:
        return self._random.random() < self.behaviour.decline_rate
