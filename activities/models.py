"""One input and one result model per activity; they travel through workflow history.

No card number or CVC ever appears here: only the provider token, BIN and last four.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from domain.risk import RiskVerdict
from domain.statuses import DepositStatus


class RiskCheckInput(BaseModel):
    deposit_id: str


class RiskCheckResult(BaseModel):
    decision: RiskVerdict
    score: int
    reasons: list[str]
    # A deposit in review: `hold` (not credited until an operator approves) or `credit`.
    review_mode: str = "hold"


class ChargeCardInput(BaseModel):
    deposit_id: str
    provider: str
    card_token: str
    amount_minor: int
    currency: str


class ChargeCardResult(BaseModel):
    """`found` is False only from an inquiry: the provider never saw the charge."""

    found: bool
    status: str | None = None
    decline_code: str | None = None
    charge_id: str | None = None


class CreditDepositInput(BaseModel):
    deposit_id: str
    player_id: str
    provider: str
    amount_minor: int
    currency: str
    # Set (patch `credit-with-status`): once the credit (and fee) are posted, in the same
    # activity, the deposit becomes `succeeded` at this time, served by `provider`. The
    # postings go through group commit and the status follows in its own transaction; a retry
    # after a crash in between posts nothing again and records the status then.
    succeeded_at: datetime | None = None
    # A late payment: the deposit may already be expired or failed, and becomes succeeded.
    late: bool = False
    # How the payer funded it (Kaspi's loan / instalment fields), kept with the deposit.
    funding: dict[str, Any] | None = None


class CreditDepositResult(BaseModel):
    transaction_id: int
    key: str
    created: bool


class RecordStatusInput(BaseModel):
    deposit_id: str
    status: DepositStatus
    reason: str | None = None
    occurred_at: datetime
    # The provider that served the deposit, recorded with the status (its action done).
    provider: str | None = None


class RecordStatusResult(BaseModel):
    status: DepositStatus
