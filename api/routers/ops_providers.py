"""`GET /v1/ops/providers`: each provider's health for operators.

Success rate and latency come from the attempts of the last `routing_stats_window_seconds`
(the numbers routing uses); the circuit is the breaker state every worker shares.
"""

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import OperatorDep, SessionDep, SettingsDep
from db import gateway as gateway_store

router = APIRouter(prefix="/v1/ops", tags=["ops"])


class CircuitOut(BaseModel):
    state: str
    consecutive_failures: int
    opened_at: datetime | None


class ProviderHealthOut(BaseModel):
    provider: str
    connector: str
    """The connector type the provider is reached through (`PAY_CONNECTORS`)."""
    simulated: bool
    """True while the provider is reached at the embedded simulator (no base URL configured)."""
    method: str
    priority: int
    weight: int
    enabled: bool
    window_seconds: int
    attempts: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    circuit: CircuitOut


class ProviderHealthList(BaseModel):
    object: str = "list"
    data: list[ProviderHealthOut]


@router.get("/providers")
async def providers_health(
    session: SessionDep, settings: SettingsDep, _: OperatorDep
) -> ProviderHealthList:
    now = datetime.now(UTC)
    names = [rule.name for rule in settings.providers]
    window = settings.routing_stats_window_seconds
    async with session.begin():
        circuits = await gateway_store.circuits(session, providers=names)
        health = await gateway_store.provider_health(
            session, providers=names, since=gateway_store.window_start(now, window)
        )
    policy = settings.circuit_policy()
    data = []
    for rule in settings.providers:
        stats = health.get(rule.name)
        circuit = circuits[rule.name]
        data.append(
            ProviderHealthOut(
                provider=rule.name,
                connector=settings.connector(rule.name).type,
                simulated=settings.connector(rule.name).base_url is None,
                method=rule.method,
                priority=rule.priority,
                weight=rule.weight,
                enabled=rule.enabled,
                window_seconds=window,
                attempts=stats.attempts if stats else 0,
                success_rate=round(stats.successes / stats.attempts, 4)
                if stats and stats.attempts
                else None,
                latency_p50_ms=stats.latency_p50_ms if stats else None,
                latency_p95_ms=stats.latency_p95_ms if stats else None,
                circuit=CircuitOut(
                    state=circuit.effective_state(now, policy.cooldown).value,
                    consecutive_failures=circuit.consecutive_failures,
                    opened_at=circuit.opened_at,
                ),
            )
        )
    return ProviderHealthList(data=data)
