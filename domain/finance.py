"""The finance team's view of the ledger: general-ledger account codes, accounting periods, and
the day a posting belongs to.

Every ledger transaction has a posting date (migration 0120): the Asia/Almaty day it was
written, unless the writer dated it otherwise. Trial balances, daily balance snapshots and the
GL export read posting dates; a closed period (a calendar month) takes no more postings, so a
correction of a closed month is posted, and dated, in the open one.

The chart maps each ledger account type to a general-ledger account. Player accounts are one
control account each in the GL (their detail is the ledger itself); house accounts are split by
owner (the provider), never by shard.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime

# The days the books count in are reconciliation's: Asia/Almaty calendar days.
from domain.recon.days import BUSINESS_TZ as BUSINESS_TZ
from domain.recon.days import business_day as business_day

Normal = str  # "D" (assets, expenses) or "C" (liabilities, revenue)


@dataclass(frozen=True)
class GlAccount:
    code: str
    name: str
    normal: Normal


# Ledger account type -> general-ledger account.
CHART: dict[str, GlAccount] = {
    "operator_bank": GlAccount("1010", "Operator bank account", "D"),
    "provider_clearing": GlAccount("1200", "Provider clearing", "D"),
    "provider_settlement": GlAccount("1210", "Provider settlements receivable", "D"),
    "player_receivable": GlAccount("1300", "Receivables from players (chargebacks)", "D"),
    "player_wallet": GlAccount("2100", "Player funds", "C"),
    "game_revenue": GlAccount("4000", "Gaming revenue", "C"),
    "fee_revenue": GlAccount("4100", "Fee revenue", "C"),
    "provider_fee_expense": GlAccount("6100", "Payment provider fees", "D"),
    "recon_difference": GlAccount("1900", "Reconciliation suspense (explained by open cases)", "D"),
    "recon_write_off": GlAccount("6900", "Reconciliation differences written off", "D"),
}
UNMAPPED = GlAccount("9999", "Unmapped ledger accounts", "D")
_PLAYER_TYPES = frozenset({"player_wallet", "player_receivable"})


def gl_account(account_type: str) -> GlAccount:
    return CHART.get(account_type, UNMAPPED)


def gl_subaccount(account_type: str, owner_id: str | None) -> str:
    """The GL line an account adds to: all players together, a house account by its owner."""
    if account_type in _PLAYER_TYPES:
        return "players"
    return owner_id or "house"


_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, order=True)
class Period:
    """An accounting period: a calendar month, `YYYY-MM`."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Period":
        match = _PERIOD.match(text)
        if match is None or not 1900 < int(match.group(1)) < 3000:
            raise ValueError(f"{text!r} is not a period YYYY-MM")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def of(cls, day: date) -> "Period":
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def has_ended(period: Period, *, now: datetime) -> bool:
    """A period may be closed only once its last day is over in Asia/Almaty."""
    return business_day(now) > period.last_day


@dataclass(frozen=True)
class BalanceLine:
    """One account's (or GL line's) posted debits and credits."""

    debits_minor: int
    credits_minor: int

    @property
    def debit_balance_minor(self) -> int:
        return max(self.debits_minor - self.credits_minor, 0)

    @property
    def credit_balance_minor(self) -> int:
        return max(self.credits_minor - self.debits_minor, 0)
