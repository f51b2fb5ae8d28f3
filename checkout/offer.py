"""Which deposit methods a player is offered now, and in which order.

A method is offered when the casino allows it for the session and at least one provider can
take it now: its routing rule is enabled and serves the currency and some amount of the
session's range (`domain.routing.serves`, the rule deposits are routed by), and its circuit is
not open (a circuit past its cooldown lets a probe through, as routing does). Methods the
player paid with before come first, the most recent first; the rest follow `DEFAULT_ORDER`
(phones first: QR and banking apps are how most players in Kazakhstan pay).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from domain.routing import METHODS, CircuitState, ProviderRule, RouteRequest, serves

DEFAULT_ORDER = ("card", "qr", "mobile_banking", "ewallet", "bank_transfer", "aggregator")
SCHEMES = ("visa", "mastercard", "unionpay")
assert set(DEFAULT_ORDER) == set(METHODS)


@dataclass(frozen=True)
class MethodOffer:
    method: str
    min_amount: int
    """The smallest amount of the session's range some available provider takes."""
    max_amount: int
    providers: tuple[str, ...]
    schemes: tuple[str, ...] = ()
    """Cards: the schemes some available provider takes."""
    used_before: bool = False

    def takes(self, amount: int) -> bool:
        return self.min_amount <= amount <= self.max_amount


def _probe(rule: ProviderRule, amount: int, currency: str) -> RouteRequest:
    """A payment this rule would take if any would: its own scheme and BIN (cards)."""
    return RouteRequest(
        method=rule.method,
        amount_minor=amount,
        currency=currency,
        bin=rule.bin_prefixes[0] if rule.bin_prefixes else None,
        scheme=rule.schemes[0] if rule.schemes else None,
    )


def _span(rule: ProviderRule, currency: str, low: int, high: int) -> tuple[int, int] | None:
    """The part of [low, high] this rule serves (rules take one contiguous range)."""
    start = max(low, rule.min_amount_minor)
    end = high if rule.max_amount_minor is None else min(high, rule.max_amount_minor)
    if start > end or not serves(rule, _probe(rule, start, currency)):
        return None
    return start, end


def offer_methods(
    rules: Sequence[ProviderRule],
    *,
    circuits: Mapping[str, CircuitState],
    currency: str,
    low: int,
    high: int,
    allowed: Sequence[str] | None,
    used: Sequence[str] = (),
) -> list[MethodOffer]:
    """The methods to show, in order. `used`: methods the player paid with, most recent first;
    `circuits`: each provider's effective state now."""
    offers: dict[str, MethodOffer] = {}
    for method in DEFAULT_ORDER:
        if allowed is not None and method not in allowed:
            continue
        spans: list[tuple[int, int]] = []
        providers: list[str] = []
        schemes: set[str] = set()
        for rule in rules:
            if rule.method != method or circuits.get(rule.name) is CircuitState.OPEN:
                continue
            span = _span(rule, currency, low, high)
            if span is None:
                continue
            spans.append(span)
            providers.append(rule.name)
            schemes.update(rule.schemes or SCHEMES)
        if spans:
            offers[method] = MethodOffer(
                method=method,
                min_amount=min(s for s, _ in spans),
                max_amount=max(e for _, e in spans),
                providers=tuple(providers),
                schemes=tuple(s for s in SCHEMES if s in schemes) if method == "card" else (),
                used_before=method in used,
            )
    first = [offers[m] for m in dict.fromkeys(used) if m in offers]
    return first + [o for m, o in offers.items() if m not in used]
