"""Deposit statuses and the transitions between them, per the contract."""

from enum import StrEnum


class DepositStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    # Paid at the provider, not credited: the risk engine asked for a person (issue 18).
    IN_REVIEW = "in_review"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DECLINED = "declined"
    EXPIRED = "expired"


TERMINAL_DEPOSIT_STATUSES = frozenset(
    {DepositStatus.SUCCEEDED, DepositStatus.FAILED, DepositStatus.DECLINED, DepositStatus.EXPIRED}
)

_ALLOWED: dict[DepositStatus, frozenset[DepositStatus]] = {
    DepositStatus.PENDING: frozenset(
        {DepositStatus.REQUIRES_ACTION, DepositStatus.PROCESSING, DepositStatus.DECLINED}
        | {DepositStatus.FAILED}
    ),
    DepositStatus.REQUIRES_ACTION: frozenset(
        {DepositStatus.PROCESSING, DepositStatus.FAILED, DepositStatus.EXPIRED}
    ),
    DepositStatus.PROCESSING: frozenset(
        {DepositStatus.SUCCEEDED, DepositStatus.FAILED, DepositStatus.REQUIRES_ACTION}
        | {DepositStatus.IN_REVIEW}
    ),
    # An operator approves (credited) or rejects (declined, the money returned at the provider).
    DepositStatus.IN_REVIEW: frozenset({DepositStatus.SUCCEEDED, DepositStatus.DECLINED}),
}


# A payment the provider confirms after the deposit expired or failed is credited late (policy
# `credit`): the deposit becomes succeeded from these, once (workflows/late_payment.py).
LATE_PAYMENT_FROM = (DepositStatus.EXPIRED, DepositStatus.FAILED)


def can_transition(current: DepositStatus, new: DepositStatus) -> bool:
    return new in _ALLOWED.get(current, frozenset())
