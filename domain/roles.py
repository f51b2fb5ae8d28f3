"""Who may do what: the contract's three API key roles.

`merchant` is the casino backend (players, payments, reads), `operator` is a person at the
operator console (approvals, ops and analytics reads), `admin` may do everything.
"""

from enum import StrEnum


class Role(StrEnum):
    MERCHANT = "merchant"
    OPERATOR = "operator"
    ADMIN = "admin"


def allows(held: Role, required: frozenset[Role]) -> bool:
    return held is Role.ADMIN or held in required
