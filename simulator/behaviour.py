"""Runtime-settable misbehaviour of one simulated provider."""

import asyncio
import random

from pydantic import BaseModel, Field


class Behaviour(BaseModel):
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    latency_jitter_ms: int = Field(default=0, ge=0, le=60_000)
    decline_rate: float = Field(default=0.0, ge=0, le=1)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_seconds: float = Field(default=30.0, ge=0, le=600)
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
    callback_duplicate: bool = Field(default=False, description="each callback is sent twice")
    callback_out_of_order: bool = Field(
        default=False, description="a stale 'processing' callback follows the final one"
    )
    callback_delay_ms: int = Field(default=0, ge=0, le=600_000)


class BehaviourState:
    """The live behaviour plus the one-shot counters it consumes."""

    def __init__(self, seed: int | None = None) -> None:
        self.behaviour = Behaviour()
        self._random = random.Random(seed)

    async def delay(self) -> None:
        b = self.behaviour
        jitter = self._random.uniform(0, b.latency_jitter_ms) if b.latency_jitter_ms else 0
        if b.latency_ms or jitter:
            await asyncio.sleep((b.latency_ms + jitter) / 1000)

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
