"""The unified accounting system (ESU: "edinaya sistema ucheta", Law No. 219-III Art. 1 p. 3-1).

The ESU sits between bookmakers and players' money: it keeps personified records per IIN of
payments and winnings, and blocks people under 21, the self-excluded, convicted people and
debtors. Its integration API is not public, so this is a port with assumptions, each marked:

- [assumption] before a deposit the operator asks the ESU (`authorize`) whether this person may
  pay this amount; the answer is allowed or refused (with a reason), and may carry the person's
  monthly limit and what they already used this month (across every operator);
- [assumption] every deposit, withdrawal and payout is reported (`report`) with the IIN, the
  amount, the method, the provider, the time and the operator's own id; the ESU deduplicates on
  that id, so a report sent twice is recorded once;
- [assumption] amounts in minor units of KZT, times in UTC.

The HTTP adapter (`providers/esu.py`) speaks to the simulated ESU (`simulator/esu.py`).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

OperationKind = Literal["deposit", "withdrawal", "payout"]


@dataclass(frozen=True)
class EsuAuthorization:
    """What the ESU says about a payment a person is about to make."""

    allowed: bool
    reason: str | None = None  # why it is refused: underage, self_excluded, convicted, debtor
    monthly_limit_minor: int | None = None  # the person's monthly limit, when one is set
    month_used_minor: int = 0  # what the person paid this month, at every operator


@dataclass(frozen=True)
class EsuOperation:
    """One operation as the ESU records it."""

    operation_id: str  # ours, `{kind}:{payment id}`: the ESU deduplicates on it
    kind: OperationKind
    iin: str
    amount_minor: int
    currency: str
    method: str
    provider: str | None
    occurred_at: datetime
    payment_id: str


@dataclass(frozen=True)
class EsuReceipt:
    operation_id: str
    receipt_id: str
    duplicate: bool = False  # the ESU had it already


class EsuUnavailable(Exception):
    """The ESU did not answer, or answered with a failure worth trying again."""


class EsuRejected(Exception):
    """The ESU refused a report as malformed or conflicting: trying again will not help."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class UnifiedAccounting(Protocol):
    async def authorize(
        self, *, iin: str, amount_minor: int, currency: str, payment_id: str
    ) -> EsuAuthorization: ...

    async def report(self, operation: EsuOperation) -> EsuReceipt: ...


def operation_id(kind: OperationKind, payment_id: str) -> str:
    return f"{kind}:{payment_id}"


def monthly_limit_left(answer: EsuAuthorization, *, ours_this_month: int) -> int | None:
    """What the person may still pay this month under the ESU's limit (None: no limit). The
    ESU's figure counts every operator; ours counts only what the ESU may not have seen yet."""
    if answer.monthly_limit_minor is None:
        return None
    used = max(answer.month_used_minor, ours_this_month)
    return max(0, answer.monthly_limit_minor - used)
