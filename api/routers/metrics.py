"""`GET /metrics` for Prometheus, computed from PostgreSQL at scrape time.

The API may run as several replicas, so nothing is counted in process memory: every scrape
reads the current figures (a handful of indexed aggregates). No personal data in any label.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text

from api.deps import SessionDep, SettingsDep
from api.routers.ops import DEPOSIT_OPEN, WITHDRAWAL_OPEN
from db import gateway as gateway_store
from domain.routing import CircuitState

router = APIRouter(tags=["ops"])

LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

_PAYMENTS_SQL = text(
    """
    SELECT 'deposit' AS kind, method, coalesce(provider, 'unassigned') AS provider, status,
           currency, count(*) AS n, sum(amount_minor) AS amount
    FROM deposits GROUP BY method, provider, status, currency
    UNION ALL
    SELECT 'withdrawal', method, provider, status, currency, count(*), sum(amount_minor)
    FROM withdrawals GROUP BY method, provider, status, currency
    """
)

_BUCKET_COLUMNS = ", ".join(
    f"count(*) FILTER (WHERE latency_ms <= {ms}) AS le_{ms}" for ms in LATENCY_BUCKETS_MS
)
_LATENCY_SQL = text(
    f"SELECT provider, step, outcome, count(*) AS n, sum(latency_ms) AS total, {_BUCKET_COLUMNS} "  # noqa: S608 - constants only
    "FROM payment_attempts GROUP BY provider, step, outcome"
)

_BACKLOG_SQL = text(
    """
    SELECT 'deposit' AS kind, status, count(*) AS n,
           coalesce(extract(epoch FROM now() - min(updated_at)), 0) AS oldest
    FROM deposits WHERE status = ANY(:deposit_open) GROUP BY status
    UNION ALL
    SELECT 'withdrawal', status, count(*), coalesce(extract(epoch FROM now() - min(updated_at)), 0)
    FROM withdrawals WHERE status = ANY(:withdrawal_open) GROUP BY status
    """
)


@dataclass
class _Snapshot:
    payments: list[dict[str, Any]]
    latency: list[dict[str, Any]]
    backlog: list[dict[str, Any]]
    circuits: dict[str, tuple[str, int]]  # provider -> (effective state, consecutive failures)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: _Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> Iterator[Metric]:
        labels = ["kind", "method", "provider", "status", "currency"]
        count = GaugeMetricFamily(
            "kzpay_payments", "Payments by kind, method, provider and status", labels=labels
        )
        amount = GaugeMetricFamily(
            "kzpay_payments_amount_minor",
            "Sum of payment amounts in minor units (tiyn for KZT)",
            labels=labels,
        )
        for row in self.snapshot.payments:
            values = [str(row[k]) for k in labels]
            count.add_metric(values, float(row["n"]))
            amount.add_metric(values, float(row["amount"]))
        yield count
        yield amount

        latency = HistogramMetricFamily(
            "kzpay_provider_call_latency_seconds",
            "Latency of provider calls (payment_attempts) by provider, step and outcome",
            labels=["provider", "step", "outcome"],
        )
        attempts = CounterMetricFamily(
            "kzpay_provider_calls",
            "Provider calls (payment attempts) by provider, step and outcome",
            labels=["provider", "step", "outcome"],
        )
        for row in self.snapshot.latency:
            values = [str(row["provider"]), str(row["step"]), str(row["outcome"])]
            buckets = [(str(ms / 1000), float(row[f"le_{ms}"])) for ms in LATENCY_BUCKETS_MS]
            buckets.append(("+Inf", float(row["n"])))
            latency.add_metric(values, buckets, sum_value=float(row["total"] or 0) / 1000)
            attempts.add_metric(values, float(row["n"]))
        yield latency
        yield attempts

        backlog = GaugeMetricFamily(
            "kzpay_workflow_backlog",
            "Payments (and so their workflows) in a non-terminal status",
            labels=["kind", "status"],
        )
        oldest = GaugeMetricFamily(
            "kzpay_workflow_backlog_oldest_seconds",
            "Seconds since the oldest non-terminal payment last changed status",
            labels=["kind", "status"],
        )
        seen = {(str(r["kind"]), str(r["status"])): r for r in self.snapshot.backlog}
        for kind, statuses in (("deposit", DEPOSIT_OPEN), ("withdrawal", WITHDRAWAL_OPEN)):
            for status in statuses:
                found = seen.get((kind, status))
                backlog.add_metric([kind, status], float(found["n"]) if found else 0.0)
                oldest.add_metric([kind, status], float(found["oldest"]) if found else 0.0)
        yield backlog
        yield oldest

        circuit = GaugeMetricFamily(
            "kzpay_provider_circuit_state",
            "Provider circuit breaker: 1 for the state it is in (closed, open, half_open)",
            labels=["provider", "state"],
        )
        failures = GaugeMetricFamily(
            "kzpay_provider_circuit_consecutive_failures",
            "Consecutive failed provider calls the breaker has counted",
            labels=["provider"],
        )
        for provider, (state, consecutive) in sorted(self.snapshot.circuits.items()):
            for candidate in CircuitState:
                circuit.add_metric([provider, candidate.value], float(candidate.value == state))
            failures.add_metric([provider], float(consecutive))
        yield circuit
        yield failures


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(session: SessionDep, settings: SettingsDep) -> Response:
    """Prometheus text: payments, provider latency histograms and circuits, workflow backlog."""
    params = {"deposit_open": list(DEPOSIT_OPEN), "withdrawal_open": list(WITHDRAWAL_OPEN)}
    now = datetime.now(UTC)
    cooldown = settings.circuit_policy().cooldown
    names = sorted({rule.name for rule in settings.providers})
    circuits = await gateway_store.circuits(session, providers=names)
    snapshot = _Snapshot(
        payments=[dict(r) for r in (await session.execute(_PAYMENTS_SQL)).mappings()],
        latency=[dict(r) for r in (await session.execute(_LATENCY_SQL)).mappings()],
        backlog=[dict(r) for r in (await session.execute(_BACKLOG_SQL, params)).mappings()],
        circuits={
            name: (c.effective_state(now, cooldown).value, c.consecutive_failures)
            for name, c in circuits.items()
        },
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
