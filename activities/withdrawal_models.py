"""One input and one result model per withdrawal activity; they travel through history.

Destinations here are display forms only: card token/BIN/last four, IBAN, wallet, phone.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from domain.withdrawals import WithdrawalStatus


class WithdrawalRiskInput(BaseModel):
    withdrawal_id: str


class WithdrawalRiskResult(BaseModel):
    decision: Literal["approve", "review", "decline"]
    score: int
    reasons: list[str]
    version: str | None = None  # the rule set's version (None from workers before the engine)


class PayoutInput(BaseModel):
    withdrawal_id: str
    provider: str
    amount_minor: int
    currency: str
    method: str
    destination: dict[str, Any]


class PayoutResult(BaseModel):
    """`found` is False only from an inquiry: the provider never saw the payout."""

    found: bool
    status: Literal["paid", "failed", "processing"] | None = None
    failure_code: str | None = None
    payout_id: str | None = None


class SettleHoldInput(BaseModel):
    withdrawal_id: str
    action: Literal["post", "void"]


class SettleHoldResult(BaseModel):
    transaction_id: int


class RecordWithdrawalStatusInput(BaseModel):
    withdrawal_id: str
    status: WithdrawalStatus
    reason: str | None = None
    occurred_at: datetime


class RecordWithdrawalStatusResult(BaseModel):
    status: WithdrawalStatus


class RecordReviewInput(BaseModel):
    withdrawal_id: str
    action: Literal["approve", "reject", "cancel"]
    operator_id: str
    operator_name: str
    reason: str | None = None
    occurred_at: datetime


class RecordReviewResult(BaseModel):
    recorded: bool = True


class EscalateInput(BaseModel):
    withdrawal_id: str
    occurred_at: datetime


class EscalateResult(BaseModel):
    escalated: bool = True
