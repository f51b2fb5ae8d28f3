"""Withdrawal rules: statuses, who may move a withdrawal where, and the four-eyes review.

Risk (large amount, new payout destination, low game turnover, ...) is the anti-fraud engine's:
`domain/fraud`, configured under `[withdrawal]` in `config/fraud_rules.toml`.

Plain Python, so the workflow's update validators and the unit tests share one truth.
"""

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class WithdrawalStatus(StrEnum):
    PENDING = "pending"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    PROCESSING = "processing"
    PAID = "paid"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        WithdrawalStatus.PAID,
        WithdrawalStatus.REJECTED,
        WithdrawalStatus.FAILED,
        WithdrawalStatus.CANCELLED,
    }
)
_NEXT: dict[WithdrawalStatus, frozenset[WithdrawalStatus]] = {
    WithdrawalStatus.PENDING: frozenset(
        {
            WithdrawalStatus.IN_REVIEW,
            WithdrawalStatus.APPROVED,
            WithdrawalStatus.REJECTED,
            WithdrawalStatus.CANCELLED,
        }
    ),
    WithdrawalStatus.IN_REVIEW: frozenset(
        {WithdrawalStatus.APPROVED, WithdrawalStatus.REJECTED, WithdrawalStatus.CANCELLED}
    ),
    WithdrawalStatus.APPROVED: frozenset({WithdrawalStatus.PROCESSING, WithdrawalStatus.CANCELLED}),
    WithdrawalStatus.PROCESSING: frozenset({WithdrawalStatus.PAID, WithdrawalStatus.FAILED}),
}


def can_transition(current: WithdrawalStatus, target: WithdrawalStatus) -> bool:
    return target in _NEXT.get(current, frozenset())


class InvalidTransition(ValueError):
    """The request does not fit the withdrawal's status (the API answers 409 invalid_state)."""


@dataclass(frozen=True)
class ReviewPolicy:
    four_eyes_from_minor: int
    """Amounts at or above this need approvals from two different operators."""

    def approvals_needed(self, amount_minor: int) -> int:
        return 2 if amount_minor >= self.four_eyes_from_minor else 1


def check_approve(status: WithdrawalStatus, approvers: tuple[str, ...], operator_id: str) -> bool:
    """Whether this approval changes anything; raises when it is not allowed at all.

    Approving twice is harmless (False: nothing to do); approving a withdrawal that is already
    rejected, cancelled, failed or paid is an invalid transition.
    """
    if status in (WithdrawalStatus.APPROVED, WithdrawalStatus.PROCESSING):
        return False
    if status is not WithdrawalStatus.IN_REVIEW:
        raise InvalidTransition(f"a withdrawal that is {status} cannot be approved")
    return operator_id not in approvers


def check_reject(status: WithdrawalStatus) -> bool:
    if status is WithdrawalStatus.REJECTED:
        return False
    if status is not WithdrawalStatus.IN_REVIEW:
        raise InvalidTransition(f"a withdrawal that is {status} cannot be rejected")
    return True


def check_cancel(status: WithdrawalStatus) -> bool:
    if status is WithdrawalStatus.CANCELLED:
        return False
    if status not in (
        WithdrawalStatus.PENDING,
        WithdrawalStatus.IN_REVIEW,
        WithdrawalStatus.APPROVED,
    ):
        raise InvalidTransition(f"a withdrawal that is {status} can no longer be cancelled")
    return True


def destination_fingerprint(method: str, normalized: str) -> str:
    """A stable, non-reversible id for a payout destination (multi-accounting, repeat use)."""
    return hashlib.sha256(f"{method}:{normalized}".encode()).hexdigest()[:32]
