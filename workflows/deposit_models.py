"""DepositWorkflow's input and result models (passed through the sandbox: built once per worker,
not once per run)."""

from pydantic import BaseModel

from activities.gateway_models import CardRoute
from domain.statuses import DepositStatus


class DepositTimings(BaseModel):
    provider_call_seconds: float = 15.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 30.0
    # How long inquiries and cancels at one provider keep trying before the payment is flagged
    # stuck with its outcome unknown (it is never sent elsewhere then).
    give_up_seconds: float = 600.0
    provider_attempts: int = 3
    poll_initial_seconds: float = 30.0
    poll_max_seconds: float = 900.0
    # An outcome still unknown after give_up_seconds: asked again this often, for this long.
    unknown_poll_seconds: float = 1800.0
    unknown_give_up_seconds: float = 3 * 86400.0


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
