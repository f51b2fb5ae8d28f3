"""WithdrawalWorkflow's input, result and update models (passed through the sandbox)."""

from pydantic import BaseModel

from domain.withdrawals import WithdrawalStatus


class WithdrawalTimings(BaseModel):
    escalate_after_seconds: float = 4 * 3600.0
    provider_call_seconds: float = 15.0
    retry_initial_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    # How long the payout call, and then the inquiries that settle it, keep trying before the
    # withdrawal is flagged stuck (its hold is never released on a guess).
    give_up_seconds: float = 1800.0
    # A payout the provider may still process after we stopped waiting: asked again after this.
    processing_window_seconds: float = 120.0
    # A payout the provider reports as processing (bank rails): polled from this interval up.
    processing_poll_seconds: float = 60.0
    processing_poll_max_seconds: float = 3600.0


class WithdrawalWorkflowInput(BaseModel):
    withdrawal_id: str
    player_id: str
    amount_minor: int
    currency: str
    method: str
    destination: dict[str, object]
    provider: str
    approvals_needed: int
    timings: WithdrawalTimings = WithdrawalTimings()


class WithdrawalWorkflowResult(BaseModel):
    status: WithdrawalStatus
    reason: str | None = None


class ReviewInput(BaseModel):
    """Who acts and why: an operator (the person's id and name, `db/operators.py`), or the
    player through the merchant's key (the key's id). `approval_token`: the API's signature of
    exactly this decision (`domain/approvals.py`); the validators refuse an update without one.
    None only in histories recorded before tokens existed."""

    actor_id: str
    actor_name: str
    reason: str | None = None
    approval_token: str | None = None


class ReviewResult(BaseModel):
    status: WithdrawalStatus
    approvals: list[str]
    approvals_needed: int
    changed: bool
