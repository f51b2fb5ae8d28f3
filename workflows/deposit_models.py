"""DepositWorkflow's input and result models.

Imported by `workflows.deposit` through `imports_passed_through`, so they are built once per
process rather than in every workflow run's sandbox.
"""

from pydantic import BaseModel

from activities.gateway_models import CardRoute
from domain.statuses import DepositStatus


class DepositTimings(BaseModel):
    provider_call_seconds: float = 15.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    give_up_seconds: float = 600.0
    provider_attempts: int = 3
    poll_initial_seconds: float = 30.0
    poll_max_seconds: float = 900.0


class DepositWorkflowInput(BaseModel):
    deposit_id: str
    player_id: str
    amount_minor: int
    currency: str
    method: str = "card"
    card: CardRoute | None = None
    details: dict[str, str] = {}
    timings: DepositTimings = DepositTimings()


class DepositWorkflowResult(BaseModel):
    status: DepositStatus
    reason: str | None = None
    provider: str | None = None
    ledger_transaction_id: int | None = None
