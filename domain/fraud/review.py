"""A deposit's review by an operator: the only moves are pending -> approved | rejected.

Deciding the same again is harmless (nothing changes); the other decision after one was taken,
or a decision about a deposit that is not (or not yet) waiting for one, is an invalid transition
(the API answers 409 `invalid_state`). Shared by the deposit workflow's update validators (held
deposits) and the API (credited deposits whose withdrawals wait).
"""

from typing import Literal

ReviewStatus = Literal["pending", "approved", "rejected"]
ReviewAction = Literal["approve", "reject"]
OUTCOME: dict[ReviewAction, ReviewStatus] = {"approve": "approved", "reject": "rejected"}


class InvalidReview(ValueError):
    """The review cannot take this decision; the message says why."""


def check_review(status: ReviewStatus | None, action: ReviewAction) -> bool:
    """True when the decision changes the review, False when it repeats the one taken; raises
    InvalidReview otherwise. `status` None: the deposit is not waiting for a review."""
    if status is None:
        raise InvalidReview("the deposit is not waiting for a review")
    if status == "pending":
        return True
    if status == OUTCOME[action]:
        return False
    raise InvalidReview(f"the deposit's review was {status}; it cannot be {OUTCOME[action]}")
