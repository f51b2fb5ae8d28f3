"""Request and response bodies of /v1/withdrawals."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt

from api.schemas import AttemptOut, ClientInfo, EventOut, LedgerTransactionOut, RiskOut, StrictModel
from domain.compliance.deadlines import DeadlineState

WithdrawalMethod = Literal["card", "bank_transfer", "ewallet", "mobile_banking"]


class WithdrawalCreate(StrictModel):
    player_id: str = Field(min_length=1, max_length=40)
    amount: StrictInt = Field(gt=0, le=10**13, description="minor units (tiyn)")
    currency: str = Field(min_length=3, max_length=3)
    method: WithdrawalMethod
    destination: dict[str, Any] = Field(
        description="`card`: {deposit_id} of a succeeded card deposit (paid back to that card) "
        "or {card_token} of a card the player deposited with; "
        "`bank_transfer`: {iban} (KZ IBAN); `ewallet`: {wallet_account}; "
        "`mobile_banking`: {phone} (the player's own +77 number). For `bank_transfer` and "
        "`ewallet` an optional `holder_name` is matched against the player's name."
    )
    client: ClientInfo | None = Field(
        default=None, description="the player's device and IP, for the fraud rules"
    )


# Printable text only: PostgreSQL refuses NUL in text, and control characters have no place in an
# audit trail. Refused with 422 before anything reaches the workflow.
_PRINTABLE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


class ReviewBody(StrictModel):
    reason: str | None = Field(default=None, max_length=500, pattern=_PRINTABLE)


class RejectBody(StrictModel):
    reason: str = Field(min_length=1, max_length=500, pattern=_PRINTABLE)


class ReviewOut(BaseModel):
    action: str
    operator_id: str
    operator_name: str
    reason: str | None
    at: datetime


class WithdrawalOut(BaseModel):
    id: str
    object: Literal["withdrawal"] = "withdrawal"
    player_id: str
    amount: int
    currency: str
    method: str
    destination: dict[str, Any]
    status: str
    status_reason: str | None
    provider: str
    risk: RiskOut | None
    approvals_needed: int
    reviews: list[ReviewOut]
    escalated_at: datetime | None
    attempts: list[AttemptOut]
    ledger: list[LedgerTransactionOut]
    events: list[EventOut]
    workflow_id: str
    created_at: datetime
    updated_at: datetime
    payout_deadline: datetime | None = Field(
        default=None,
        description="winnings are paid by then: the end of the third calendar day after the "
        "request, Kazakhstan time (Art. 12 p. 4)",
    )
    deadline_state: DeadlineState | None = None
    deadline_warned_at: datetime | None = None
    deadline_escalated_at: datetime | None = None


class WithdrawalSummaryOut(BaseModel):
    id: str
    object: Literal["withdrawal"] = "withdrawal"
    player_id: str
    amount: int
    currency: str
    method: str
    status: str
    status_reason: str | None
    escalated_at: datetime | None
    created_at: datetime
    payout_deadline: datetime | None = None
    deadline_state: DeadlineState | None = None
    risk: RiskOut | None = Field(
        default=None, description="score and reasons: what the approval queue shows"
    )


class WithdrawalList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WithdrawalSummaryOut]
    next_cursor: str | None
