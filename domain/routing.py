"""Provider routing: which providers may serve a payment, in which order, and circuit breaking.

Plain rules over facts the caller gathered (configuration, recent success counts, circuit rows);
no I/O here, so every decision can be tested and explained.

1. Rules filter: method, currency, amount range, card scheme and BIN prefixes, enabled.
2. Priority tiers: a lower `priority` number is preferred; a tier is left only when its
   providers failed or their circuits are open.
3. Inside a tier: weighted random choice by `weight x estimated success rate`, with an
   exploration rate that picks uniformly so a recovering provider gets traffic again.
"""

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

METHODS = ("card", "bank_transfer", "ewallet", "mobile_banking", "qr", "aggregator")


@dataclass(frozen=True)
class ProviderRule:
    name: str
    method: str
    priority: int = 1
    weight: int = 100
    min_amount_minor: int = 1
    max_amount_minor: int | None = None
    currencies: tuple[str, ...] = ("KZT",)
    schemes: tuple[str, ...] = ()  # card only; empty means every scheme
    bin_prefixes: tuple[str, ...] = ()  # card only; empty means every BIN
    action_ttl_seconds: int = 900  # how long the player has to act (3DS, QR, app, transfer)
    # How long a request that reached this provider may still be processed after we stopped
    # waiting for it. A provider that cannot cancel an order it never saw is asked again after
    # this, before another provider is tried (the request may still be in flight).
    processing_window_seconds: int = 120
    enabled: bool = True


@dataclass(frozen=True)
class RouteRequest:
    method: str
    amount_minor: int
    currency: str
    bin: str | None = None
    scheme: str | None = None


def serves(rule: ProviderRule, request: RouteRequest) -> bool:
    if not rule.enabled or rule.method != request.method:
        return False
    if request.currency not in rule.currencies:
        return False
    if request.amount_minor < rule.min_amount_minor:
        return False
    if rule.max_amount_minor is not None and request.amount_minor > rule.max_amount_minor:
        return False
    if rule.schemes and (request.scheme or "unknown") not in rule.schemes:
        return False
    return not (
        rule.bin_prefixes
        and not any((request.bin or "").startswith(prefix) for prefix in rule.bin_prefixes)
    )


def eligible(rules: Sequence[ProviderRule], request: RouteRequest) -> list[ProviderRule]:
    """The providers whose rules accept the payment, best priority first (stable)."""
    return sorted((r for r in rules if serves(r, request)), key=lambda r: r.priority)


@dataclass(frozen=True)
class ProviderStats:
    attempts: int = 0
    successes: int = 0

    @property
    def success_estimate(self) -> float:
        """Laplace-smoothed success rate: an unknown provider starts at 0.5, not 0 or 1."""
        return (self.successes + 1) / (self.attempts + 2)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Circuit:
    """One provider's breaker as stored: open circuits let a probe through after a cooldown."""

    provider: str
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None

    def effective_state(self, now: datetime, cooldown: timedelta) -> CircuitState:
        if self.state is CircuitState.OPEN and self.opened_at and now - self.opened_at >= cooldown:
            return CircuitState.HALF_OPEN
        return self.state


@dataclass(frozen=True)
class CircuitPolicy:
    failure_threshold: int = 5
    cooldown: timedelta = field(default=timedelta(seconds=30))


def after_result(
    circuit: Circuit, *, failed: bool, now: datetime, policy: CircuitPolicy
) -> Circuit:
    """The breaker after one call: a success closes it, failures in a row open it."""
    if not failed:
        return replace(circuit, state=CircuitState.CLOSED, consecutive_failures=0, opened_at=None)
    failures = circuit.consecutive_failures + 1
    probing = circuit.effective_state(now, policy.cooldown) is CircuitState.HALF_OPEN
    if probing or failures >= policy.failure_threshold:
        return replace(
            circuit, state=CircuitState.OPEN, consecutive_failures=failures, opened_at=now
        )
    return replace(circuit, consecutive_failures=failures)


@dataclass(frozen=True)
class RouteDecision:
    ordered: list[ProviderRule]
    skipped: list[str]  # eligible, but their circuit is open


def order_providers(
    candidates: Sequence[ProviderRule],
    *,
    stats: Mapping[str, ProviderStats],
    circuits: Mapping[str, CircuitState],
    rng: random.Random,
    exploration: float,
) -> RouteDecision:
    """Failover order: tiers by priority; in each tier a weighted draw without replacement."""
    available = [c for c in candidates if circuits.get(c.name) is not CircuitState.OPEN]
    skipped = [c.name for c in candidates if circuits.get(c.name) is CircuitState.OPEN]
    ordered: list[ProviderRule] = []
    for priority in sorted({c.priority for c in available}):
        tier = [c for c in available if c.priority == priority]
        while tier:
            if len(tier) > 1 and rng.random() < exploration:
                chosen = rng.choice(tier)
            else:
                scores = [
                    max(c.weight, 0) * stats.get(c.name, ProviderStats()).success_estimate
                    for c in tier
                ]
                chosen = rng.choices(tier, weights=scores)[0] if sum(scores) > 0 else tier[0]
            ordered.append(chosen)
            tier.remove(chosen)
    return RouteDecision(ordered=ordered, skipped=skipped)


# Provider error codes, mapped to the unified codes shown on attempts and used in reasons.
_UNIFIED = {
    "insufficient_funds": "insufficient_funds",
    "expired_card": "expired_card",
    "do_not_honor": "do_not_honor",
    "declined_by_payer": "declined_by_payer",
    "not_a_customer": "payer_not_found",
    "wallet_not_found": "payer_not_found",
    "limit_exceeded": "limit_exceeded",
    "authentication_failed": "authentication_failed",
    "timeout": "provider_timeout",
    "unreachable": "provider_unavailable",
    "token_unavailable": "provider_unavailable",  # an OAuth token endpoint down (Halyk)
    "circuit_open": "circuit_open",
    "amount_mismatch": "amount_mismatch",
    "expired": "expired",
    "cancelled": "expired",
}


def unified_error_code(code: str | None) -> str | None:
    """The platform's stable code for a provider's error or decline code."""
    if code is None:
        return None
    if code in _UNIFIED:
        return _UNIFIED[code]
    if code.startswith("http_5") or code in {
        "temporarily_unavailable",
        "outage",
        "unavailable",
        "service_unavailable",
        "maintenance",
    }:
        return "provider_unavailable"
    if code.startswith("http_4") or code in {"unknown_token", "reference_reused"}:
        return "invalid_request"
    return "declined"
