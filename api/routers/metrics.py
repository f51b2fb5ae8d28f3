"""`GET /metrics` for Prometheus, read from PostgreSQL's rollups at scrape time.

The API may run as several replicas, so nothing is counted in process memory: every scrape
reads the current figures from the rollups triggers keep (db/rollups.py; never the payment
history), on the analytics pool. No personal data in any label.

A scrape costs several aggregates, so it is not for everyone: with `PAY_METRICS_TOKEN` set
(required in production) it needs `Authorization: Bearer <token>`, checked before any query, and
the edge (deploy/nginx) never forwards `/metrics`: Prometheus scrapes each replica on the
internal network.
"""

import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import text

from api.deps import AnalyticsSessionDep, SettingsDep
from api.errors import Problem
from api.routers.analytics import fold_rollups
from api.routers.ops import DEPOSIT_OPEN, WITHDRAWAL_OPEN
from db import gateway as gateway_store
from db import rollups
from domain.routing import CircuitState

router = APIRouter(tags=["ops"])

LATENCY_BUCKETS_MS = rollups.LATENCY_BUCKETS_MS

# Both from the rollups the triggers keep (db/rollups.py, migration 0170): a few hundred rows
# however long the history, pending deltas included.
_PAYMENTS_SQL = text(
    "SELECT kind, method, provider, status, currency, n, amount_minor AS amount "  # noqa: S608 - constants only
    f"FROM ({rollups.ACTUAL['payment_totals']}) t"
)
_LATENCY_SQL = text(
    "SELECT *, total_ms AS total "  # noqa: S608 - constants only
    f"FROM ({rollups.ACTUAL['provider_call_totals']}) t"
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

        # Monotonic: every payment ever created (a status change moves a payment between the
        # gauges above, never out of this), so rate() works on it.
        created = CounterMetricFamily(
            "kzpay_payments_created",
            "Payments created, by kind, method, provider and currency",
            labels=["kind", "method", "provider", "currency"],
        )
        sums: dict[tuple[str, ...], float] = {}
        for row in self.snapshot.payments:
            key = tuple(str(row[k]) for k in ("kind", "method", "provider", "currency"))
            sums[key] = sums.get(key, 0.0) + float(row["n"])
        for labels_of, n in sorted(sums.items()):
            created.add_metric(list(labels_of), n)
        yield created

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


_token = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="PAY_METRICS_TOKEN, as `Authorization: Bearer <token>` (when it is set)",
)


async def metrics_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_token)],
) -> None:
    """Lets a scrape through with the metrics token, or anyone when none is configured."""
    expected = settings.metrics_token
    if expected is None:
        return
    given = credentials.credentials.strip() if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise Problem(
            401,
            "unauthorized",
            "Send the metrics token (PAY_METRICS_TOKEN) as `Authorization: Bearer <token>`",
        )


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_token)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(session: AnalyticsSessionDep, settings: SettingsDep) -> Response:
    """Prometheus text: payments, provider latency histograms and circuits, workflow backlog."""
    params = {"deposit_open": list(DEPOSIT_OPEN), "withdrawal_open": list(WITHDRAWAL_OPEN)}
    await fold_rollups(session)
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
