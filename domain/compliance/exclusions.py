"""Who may not play, checked by IIN (Law No. 219-III "On gambling business", Art. 15-1, as
amended by Law No. 116-VIII of 8 July 2024):

- people under 21 (the IIN carries the birth date);
- people on the self-exclusion register (filed through eGov for 6 months to 10 years; it is
  irrevocable: a request to lift it early is refused);
- people on the Unified Register of Debtors;
- civil servants and military servicemen.

The registers are reached through one port, `ExclusionRegistry`: an HTTP adapter to the register
service (`providers/registers.py`; the simulator's `simulator/registers.py` in development) with
a short-lived cache. A register that does not answer raises `RegistryUnavailable`; what a caller
does then is its policy (deposits fail closed, withdrawals of existing balances go on).
"""

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal, Protocol

from domain.iin import age_on, parse_iin

MINIMUM_AGE = 21
SELF_EXCLUSION_MIN_DAYS = 183  # 6 months
SELF_EXCLUSION_MAX_DAYS = 3653  # 10 years


class Register(StrEnum):
    SELF_EXCLUSION = "self_exclusion"
    DEBTORS = "debtors"
    CIVIL_SERVANTS = "civil_servants"
    MILITARY = "military"


# The refusal code of each register: stable API codes (problem+json `code`).
REFUSAL_CODES: dict[Register, str] = {
    Register.SELF_EXCLUSION: "self_excluded",
    Register.DEBTORS: "debtor_excluded",
    Register.CIVIL_SERVANTS: "civil_servant_excluded",
    Register.MILITARY: "military_excluded",
}
_DESCRIBED: dict[Register, str] = {
    Register.SELF_EXCLUSION: "is on the self-exclusion register",
    Register.DEBTORS: "is on the Unified Register of Debtors",
    Register.CIVIL_SERVANTS: "is a civil servant (barred from gambling)",
    Register.MILITARY: "is a serviceman (barred from gambling)",
}

Stage = Literal["registration", "deposit", "withdrawal"]
# What each register bars. A self-excluded person may still take back the balance they hold
# (stopping the play is the point, keeping their money is not); the other registers bar
# payouts too (a debtor's winnings go through the enforcement officer, not to the account).
BARS: dict[Register, frozenset[str]] = {
    Register.SELF_EXCLUSION: frozenset({"registration", "deposit"}),
    Register.DEBTORS: frozenset({"registration", "deposit", "withdrawal"}),
    Register.CIVIL_SERVANTS: frozenset({"registration", "deposit", "withdrawal"}),
    Register.MILITARY: frozenset({"registration", "deposit", "withdrawal"}),
}


@dataclass(frozen=True)
class Listing:
    """One register's entry for a person, as the register service answers it."""

    register: Register
    reason: str | None = None
    listed_from: date | None = None
    listed_until: date | None = None


@dataclass(frozen=True)
class RegistryAnswer:
    iin: str
    listings: tuple[Listing, ...] = ()
    checked_at: datetime | None = None


@dataclass(frozen=True)
class Exclusion:
    """Why a person is refused: the API's code, a detail, and the register (None: the age)."""

    code: str
    detail: str
    register: Register | None = None


class RegistryUnavailable(Exception):
    """The register service did not answer (or answered something unreadable)."""


class ExclusionRegistry(Protocol):
    """The registers checked by IIN: every active listing of this person."""

    async def check(self, iin: str) -> RegistryAnswer: ...


def age_exclusion(iin: str, *, today: date) -> Exclusion | None:
    """Under 21 by the birth date the IIN carries (an invalid IIN is not this rule's to judge)."""
    born = parse_iin(iin).birth_date
    if age_on(born, today) < MINIMUM_AGE:
        return Exclusion("underage", f"Players must be at least {MINIMUM_AGE} years old")
    return None


def register_exclusion(answer: RegistryAnswer, *, stage: Stage) -> Exclusion | None:
    """The first listing that bars this stage, in the order of `Register` (most specific first:
    self-exclusion, then the debtors, civil servants and military registers)."""
    for register in Register:
        if stage not in BARS[register]:
            continue
        for listing in answer.listings:
            if listing.register is register:
                until = f" until {listing.listed_until.isoformat()}" if listing.listed_until else ""
                return Exclusion(
                    REFUSAL_CODES[register],
                    f"The person {_DESCRIBED[register]}{until}",
                    register,
                )
    return None


def self_exclusion_term_problem(listed_from: date, listed_until: date | None) -> str | None:
    """Why a self-exclusion register entry's term is not one the law allows, or None."""
    if listed_until is None:
        return "a self-exclusion has an end date (6 months to 10 years)"
    days = (listed_until - listed_from).days
    if days < SELF_EXCLUSION_MIN_DAYS:
        return "a self-exclusion lasts at least 6 months"
    if days > SELF_EXCLUSION_MAX_DAYS:
        return "a self-exclusion lasts at most 10 years"
    return None
