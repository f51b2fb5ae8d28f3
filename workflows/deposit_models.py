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


# The shape of DepositWorkflow a deposit runs, chosen when it starts and kept in its input (so
# in its history). 1: risk, route and `processing` as three steps, later changes each gated by
# `workflow.patched` (a marker and a search-attribute upsert per patch, in every history);
# 2: one `prepare_deposit` step, every change of version 1 in place, no patch markers.
# Histories started before the field existed have no value and replay as version 1.
FLOW_PREPARED = 2
CURRENT_FLOW_VERSION = FLOW_PREPARED


class DepositWorkflowInput(BaseModel):
    deposit_id: str
    player_id: str
    amount_minor: int
    currency: str
    method: str = "card"
    card: CardRoute | None = None
    details: dict[str, str] = {}
    timings: DepositTimings = DepositTimings()
    flow_version: int = 1


class DepositWorkflowResult(BaseModel):
    status: DepositStatus
    reason: str | None = None
    provider: str | None = None
    ledger_transaction_id: int | None = None
