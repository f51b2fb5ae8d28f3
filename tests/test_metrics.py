"""`GET /metrics` parses as Prometheus text and carries the right figures."""

import uuid
from datetime import UTC, date, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Deposit, PaymentAttempt, Player


async def test_metrics_parse_and_count(
    sessions: async_sessionmaker[AsyncSession], anonymous_api: httpx.AsyncClient
) -> None:
    provider = f"prov{uuid.uuid4().hex[:8]}"
    player = Player(
        id=f"pl_{uuid.uuid4().hex[:20]}",
        external_id=f"metrics-{uuid.uuid4().hex}",
        iin="900101300000",
        full_name="Metrics Fixture",
        birth_date=date(1990, 1, 1),
        phone="+77010000000",
    )
    now = datetime.now(UTC)
    deposits = [
        Deposit(
            id=f"dep_{uuid.uuid4().hex[:20]}",
            player_id=player.id,
            amount_minor=amount,
            currency="KZT",
            method="qr",
            status=status,
            provider=provider,
            workflow_id=f"deposit-{uuid.uuid4().hex}",
            created_at=now,
            updated_at=now,
        )
        for amount, status in [(100_001, "succeeded"), (200_000, "succeeded"), (5, "processing")]
    ]
    attempts = [
        PaymentAttempt(
            payment_id=deposits[0].id,
            step="charge",
            attempt_no=n,
            provider=provider,
            outcome="ok",
            latency_ms=ms,
        )
        for n, ms in enumerate([30, 120, 4000], start=1)
    ]
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all(deposits)
        await session.flush()
        session.add_all(attempts)

    response = await anonymous_api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {
        "kzpay_payments",
        "kzpay_payments_amount_minor",
        "kzpay_provider_call_latency_seconds",
        "kzpay_provider_calls",
        "kzpay_workflow_backlog",
        "kzpay_workflow_backlog_oldest_seconds",
        "kzpay_provider_circuit_state",
        "kzpay_provider_circuit_consecutive_failures",
    } <= set(families)

    def value(family: str, sample: str, **labels: str) -> float:
        for s in families[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError(f"no {sample} {labels}")

    ours = {"provider": provider, "method": "qr", "kind": "deposit", "currency": "KZT"}
    assert value("kzpay_payments", "kzpay_payments", status="succeeded", **ours) == 2
    assert value("kzpay_payments", "kzpay_payments", status="processing", **ours) == 1
    assert (
        value(
            "kzpay_payments_amount_minor",
            "kzpay_payments_amount_minor",
            status="succeeded",
            **ours,
        )
        == 300_001
    )
    hist = "kzpay_provider_call_latency_seconds"
    assert value(hist, f"{hist}_bucket", provider=provider, le="0.05") == 1
    assert value(hist, f"{hist}_bucket", provider=provider, le="0.25") == 2
    assert value(hist, f"{hist}_bucket", provider=provider, le="5.0") == 3
    assert value(hist, f"{hist}_bucket", provider=provider, le="+Inf") == 3
    assert value(hist, f"{hist}_count", provider=provider) == 3
    assert abs(value(hist, f"{hist}_sum", provider=provider) - 4.15) < 1e-9
    backlog = value(
        "kzpay_workflow_backlog", "kzpay_workflow_backlog", kind="deposit", status="processing"
    )
    assert backlog >= 1
    assert (
        value(
            "kzpay_workflow_backlog",
            "kzpay_workflow_backlog",
            kind="withdrawal",
            status="in_review",
        )
        >= 0
    )
