"""Routing rules, weighted selection with exploration, circuit breaking, error codes and
webhook signatures: plain functions, no I/O."""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from config import Settings
from domain.routing import (
    Circuit,
    CircuitPolicy,
    CircuitState,
    ProviderRule,
    ProviderStats,
    RouteRequest,
    after_result,
    eligible,
    order_providers,
    unified_error_code,
)
from providers.errors import ProviderOutcomeUnknown, ProviderTimeout
from providers.payments import PaymentProviderClient
from providers.signing import SignatureError, sign, verify

NOW = datetime(2026, 1, 1, tzinfo=UTC)

RULES = (
    ProviderRule("a", "card", priority=1, schemes=("visa", "mastercard")),
    ProviderRule("b", "card", priority=1, weight=300, schemes=("visa",)),
    ProviderRule("c", "card", priority=2, bin_prefixes=("4000",), max_amount_minor=10_000),
    ProviderRule("q", "qr", min_amount_minor=500),
    ProviderRule("off", "card", enabled=False),
)


def _card(amount: int = 5_000, bin_: str = "400000", scheme: str = "visa") -> RouteRequest:
    return RouteRequest("card", amount, "KZT", bin=bin_, scheme=scheme)


def test_rules_filter_by_method_scheme_bin_amount_and_currency() -> None:
    assert [r.name for r in eligible(RULES, _card())] == ["a", "b", "c"]
    assert [r.name for r in eligible(RULES, _card(scheme="mastercard", bin_="510000"))] == ["a"]
    assert [r.name for r in eligible(RULES, _card(amount=20_000))] == ["a", "b"]
    assert [r.name for r in eligible(RULES, _card(scheme="unionpay", bin_="620000"))] == []
    assert [r.name for r in eligible(RULES, RouteRequest("qr", 400, "KZT"))] == []
    assert [r.name for r in eligible(RULES, RouteRequest("qr", 500, "KZT"))] == ["q"]
    assert [r.name for r in eligible(RULES, RouteRequest("qr", 500, "USD"))] == []


def _first_choices(stats: dict[str, ProviderStats], exploration: float) -> Counter[str]:
    rng = random.Random(7)
    candidates = eligible(RULES, _card())
    return Counter(
        order_providers(candidates, stats=stats, circuits={}, rng=rng, exploration=exploration)
        .ordered[0]
        .name
        for _ in range(4_000)
    )


def test_priority_tier_first_then_weight_times_success_rate() -> None:
    picks = _first_choices({}, exploration=0.0)
    assert set(picks) == {"a", "b"}  # c is in the second tier
    assert 0.70 < picks["b"] / 4_000 < 0.80  # weight 300 vs 100 at equal (unknown) success

    failing_b = {"a": ProviderStats(100, 95), "b": ProviderStats(100, 5)}
    picks = _first_choices(failing_b, exploration=0.0)
    assert picks["a"] > 3 * picks["b"]  # b's success rate outweighs its weight


def test_exploration_keeps_sending_some_traffic_to_a_poor_provider() -> None:
    dead_b = {"a": ProviderStats(1_000, 1_000), "b": ProviderStats(1_000, 0)}
    without = _first_choices(dead_b, exploration=0.0)
    with_exploration = _first_choices(dead_b, exploration=0.2)
    assert with_exploration["b"] > without["b"]
    assert with_exploration["b"] > 0.05 * 4_000


def test_failover_order_covers_every_tier_and_skips_open_circuits() -> None:
    decision = order_providers(
        eligible(RULES, _card()),
        stats={},
        circuits={"b": CircuitState.OPEN, "a": CircuitState.HALF_OPEN},
        rng=random.Random(1),
        exploration=0.0,
    )
    assert [r.name for r in decision.ordered] == ["a", "c"]
    assert decision.skipped == ["b"]


def test_circuit_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    policy = CircuitPolicy(failure_threshold=3, cooldown=timedelta(seconds=30))
    circuit = Circuit("a")
    for _ in range(2):
        circuit = after_result(circuit, failed=True, now=NOW, policy=policy)
    assert circuit.state is CircuitState.CLOSED
    assert after_result(circuit, failed=False, now=NOW, policy=policy).consecutive_failures == 0
    circuit = after_result(circuit, failed=True, now=NOW, policy=policy)
    assert circuit.state is CircuitState.OPEN
    assert (
        circuit.effective_state(NOW + timedelta(seconds=29), policy.cooldown) is CircuitState.OPEN
    )
    later = NOW + timedelta(seconds=31)
    assert circuit.effective_state(later, policy.cooldown) is CircuitState.HALF_OPEN
    reopened = after_result(circuit, failed=True, now=later, policy=policy)
    assert (reopened.state, reopened.opened_at) == (CircuitState.OPEN, later)
    closed = after_result(circuit, failed=False, now=later, policy=policy)
    assert closed.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("code", "unified"),
    [
        ("http_503", "provider_unavailable"),
        ("unreachable", "provider_unavailable"),
        ("timeout", "provider_timeout"),
        ("insufficient_funds", "insufficient_funds"),
        ("not_a_customer", "payer_not_found"),
        ("http_409", "invalid_request"),
        ("something_new", "declined"),
        (None, None),
    ],
)
def test_provider_codes_map_to_unified_codes(code: str | None, unified: str | None) -> None:
    assert unified_error_code(code) == unified


def test_signature_binds_body_and_timestamp() -> None:
    body = b'{"reference":"dep_1","status":"succeeded"}'
    signature = sign("s3cret", 1_000, body)
    verify(
        "s3cret", body=body, signature=signature, timestamp="1000", now=1_100, tolerance_seconds=300
    )
    cases = [
        ("other", body, signature, "1000", 1_100, "invalid_signature"),
        ("s3cret", body + b" ", signature, "1000", 1_100, "invalid_signature"),
        ("s3cret", body, signature, "1001", 1_100, "invalid_signature"),  # re-stamped replay
        ("s3cret", body, signature, "1000", 1_400, "stale_timestamp"),
        ("s3cret", body, None, "1000", 1_100, "signature_missing"),
        ("s3cret", body, signature, "soon", 1_100, "invalid_timestamp"),
    ]
    for secret, payload, sig, stamp, now, code in cases:
        with pytest.raises(SignatureError) as caught:
            verify(
                secret, body=payload, signature=sig, timestamp=stamp, now=now, tolerance_seconds=300
            )
        assert caught.value.code == code


def test_default_registry_serves_every_method_with_distinct_secrets() -> None:
    settings = Settings()
    methods = {rule.method for rule in settings.providers}
    assert methods == {"card", "bank_transfer", "ewallet", "mobile_banking", "qr", "aggregator"}
    assert len([r for r in settings.providers if r.method == "card"]) >= 2
    secrets = [settings.provider_secret(rule.name) for rule in settings.providers]
    assert len(set(secrets)) == len(secrets)


async def test_payment_adapter_translates_transport_errors() -> None:
    """Unit test of one adapter's error boundary (MockTransport: no money moves here)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/slow"):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(502, json={"code": "bad_gateway"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = PaymentProviderClient(
            http=http, base_url="http://sim", provider="kaspi_qr", secret="x"
        )
        with pytest.raises(ProviderOutcomeUnknown) as unknown:  # a 502 may follow processing
            await client.get_payment("dep_1")
        assert unknown.value.code == "http_502"
        with pytest.raises(ProviderTimeout):
            await client.get_payment("slow")
