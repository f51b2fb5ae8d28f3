"""The chaos run's end checks as plain functions over what it read at the end (no I/O), so each
can be shown to fail on made-up facts (tests/test_chaos.py) and on planted breaches
(`python -m bench.chaos --self-test`).

Facts come from three places:

* the simulator's `GET /admin/charges?reference=ID`: everything any provider holds under a
  payment's reference (`Held`), so money that moved at ANY provider counts, not only where the
  platform thinks it sent the payment;
* the platform's `GET /v1/ops/late-payments` (`LateCase`): money a provider reported for a
  deposit that had already expired, failed or succeeded elsewhere;
* the platform's `GET /v1/ops/stuck`: what an open payment waits on, and why it is stuck.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.statuses import DepositStatus
from domain.withdrawals import WithdrawalStatus

# Every status either kind of payment can have: a "reason" made of these only echoes a status.
STATUS_WORDS = frozenset(s.value for s in DepositStatus) | frozenset(
    s.value for s in WithdrawalStatus
)
# Words that say nothing on their own ("stuck at processing", "waiting on: pending").
FILLER_WORDS = frozenset(
    {"stuck", "at", "on", "in", "is", "the", "status", "state", "waiting", "for", "still", "open"}
)
# Late-payment resolutions that settle the case (credited to the player, or money sent back).
RESOLVED_LATE = ("credit", "refund")


@dataclass(frozen=True)
class Held:
    """One thing a simulated provider holds under a reference (a row of /admin/charges)."""

    provider: str
    kind: str  # charge | payment | payout
    status: str
    money_moved: bool
    amount: int
    currency: str
    amount_received: int | None = None

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "Held":
        received = row.get("amount_received")
        return cls(
            provider=str(row["provider"]),
            kind=str(row["kind"]),
            status=str(row["status"]),
            money_moved=bool(row["money_moved"]),
            amount=int(row["amount"]),
            currency=str(row.get("currency") or ""),
            amount_received=int(received) if received is not None else None,
        )

    @property
    def received(self) -> int:
        return self.amount_received if self.amount_received is not None else self.amount

    def describe(self) -> str:
        paid = f"{self.received}/{self.amount}" if self.received != self.amount else self.amount
        return f"{self.provider} {self.kind} {self.status} {paid} {self.currency}".rstrip()


@dataclass(frozen=True)
class LateCase:
    """One case of `GET /v1/ops/late-payments`."""

    deposit_id: str
    provider: str
    amount_minor: int
    currency: str
    policy: str
    resolution: str

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> "LateCase":
        return cls(
            deposit_id=str(row["deposit_id"]),
            provider=str(row.get("provider") or ""),
            amount_minor=int(row.get("amount_minor") or 0),
            currency=str(row.get("currency") or ""),
            policy=str(row.get("policy") or ""),
            resolution=str(row.get("resolution") or ""),
        )

    @property
    def resolved(self) -> bool:
        return any(word in self.resolution.lower() for word in RESOLVED_LATE)

    @property
    def credited(self) -> bool:
        return "credit" in self.resolution.lower()


def cases_by_deposit(cases: Iterable[LateCase]) -> dict[str, list[LateCase]]:
    found: dict[str, list[LateCase]] = {}
    for case in cases:
        found.setdefault(case.deposit_id, []).append(case)
    return found


@dataclass(frozen=True)
class Money:
    """What one payment looks like at the end: the platform's side."""

    id: str
    kind: str  # deposit | withdrawal
    status: str
    terminal: bool
    provider: str | None
    amount: int
    currency: str = "KZT"


@dataclass
class MoneyFindings:
    double_charges: list[str]
    charge_mismatch: list[str]
    dropped_late_payments: list[str]
    late_payments_wrong: list[str]
    double_payouts: list[str]
    payout_mismatch: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return dict(vars(self))


def judge_money(
    payments: Sequence[Money],
    held: Mapping[str, Sequence[Held]],
    late: Mapping[str, Sequence[LateCase]],
) -> MoneyFindings:
    """Per deposit: money moved at most once across ALL providers, and exactly once (where it
    was credited) when the deposit succeeded, except where a late-payment case covers the
    other provider's money. A deposit that did not succeed but whose money moved somewhere
    needs a late-payment case: without one the payment was dropped. (An open deposit is judged
    by the stuck check instead.) Each case must be resolved: credited (the deposit then
    succeeded, at that provider, credited once: the posting check) or refunded, and never a
    refund of the very payment the deposit was credited for.
    Per withdrawal: at most one paid payout across all payout desks, paid exactly when the
    withdrawal is paid, for its amount and currency."""
    found = MoneyFindings([], [], [], [], [], [])
    for p in payments:
        rows = held.get(p.id, ())
        if p.kind == "deposit":
            _judge_deposit(p, rows, late.get(p.id, ()), found)
        else:
            _judge_withdrawal(p, rows, found)
    return found


def _judge_deposit(
    p: Money, rows: Sequence[Held], cases: Sequence[LateCase], found: MoneyFindings
) -> None:
    moved = [h for h in rows if h.money_moved and h.kind in ("charge", "payment")]
    by_provider = {c.provider: c for c in cases}
    credited_at = p.provider if p.status == "succeeded" else None
    for case in cases:
        what = f"{p.id}: late payment at {case.provider} ({case.amount_minor} {case.currency}"
        what += f", policy {case.policy})"
        if not case.resolved and case.policy != "manual":  # manual: an operator's to decide
            found.late_payments_wrong.append(
                f"{what} still {case.resolution or 'unresolved'}; deposit {p.status}"
            )
        elif case.credited and (p.status, p.provider) != ("succeeded", case.provider):
            found.late_payments_wrong.append(
                f"{what} {case.resolution}, but the deposit is {p.status} at {p.provider}"
            )
        elif not case.credited and case.provider == credited_at:
            found.late_payments_wrong.append(
                f"{what} {case.resolution}: that is the payment the deposit was credited for "
                f"at {credited_at} (the player keeps the credit, the money goes back)"
            )
    for h in moved:
        if h.provider == credited_at:
            continue
        if h.provider in by_provider:
            continue  # a late payment the platform knows of (resolution judged above)
        if p.status == "succeeded":
            found.double_charges.append(
                f"{p.id}: credited for {credited_at}, money moved at {h.describe()} too; no "
                "late-payment case"
            )
        elif p.terminal:
            found.dropped_late_payments.append(
                f"{p.id}: deposit {p.status}, money moved at {h.describe()}; no late-payment case"
            )
    if p.status == "succeeded":
        here = [h for h in moved if h.provider == credited_at]
        if not here:
            where = ", ".join(h.describe() for h in moved) or "nowhere"
            found.charge_mismatch.append(
                f"{p.id}: deposit succeeded at {credited_at}, money moved {where}"
            )
        elif here[0].received < p.amount or here[0].currency != p.currency:
            found.charge_mismatch.append(
                f"{p.id}: credited {p.amount} {p.currency}, {here[0].describe()} received"
            )


def _judge_withdrawal(p: Money, rows: Sequence[Held], found: MoneyFindings) -> None:
    paid = [h for h in rows if h.kind == "payout" and h.money_moved]
    if len(paid) > 1:
        found.double_payouts.append(
            f"{p.id}: paid {len(paid)} times: " + ", ".join(h.describe() for h in paid)
        )
    if p.terminal and (p.status == "paid") != bool(paid):
        where = ", ".join(h.describe() for h in rows) or "no payout anywhere"
        found.payout_mismatch.append(f"{p.id}: withdrawal {p.status}; {where}")
    elif (
        p.status == "paid"
        and paid
        and (paid[0].amount, paid[0].currency)
        != (
            p.amount,
            p.currency,
        )
    ):
        found.payout_mismatch.append(
            f"{p.id}: withdrawal of {p.amount} {p.currency} paid as {paid[0].describe()}"
        )


# -- open payments -------------------------------------------------------------------------------


def names_something(text: str | None, status: str) -> bool:
    """Whether `text` says more than the payment's status: a step, a provider, a cause. Empty,
    the status itself, or only status words and filler ("stuck at processing") say nothing."""
    if not text:
        return False
    words = re.findall(r"[a-z0-9_]+", text.lower())
    meaningful = [w for w in words if w not in STATUS_WORDS and w not in FILLER_WORDS]
    return bool(meaningful) and text.strip().lower() != status.lower()


@dataclass(frozen=True)
class OpenPayment:
    id: str
    kind: str
    status: str
    expect_open: bool  # left unfinished on purpose (the player / operator never acts)
    workflow: str | None  # Temporal's execution status name, None if unknown
    money: str = ""  # what providers hold, for the report


def judge_open(
    open_payments: Sequence[OpenPayment], stuck: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """(listed with a reason, open without one). A payment still open when the run is over
    passes only with a real reason from `GET /v1/ops/stuck`:

    * its `stuck_reason` (the workflow gave up a bounded step and flagged it), saying more
      than the status; or
    * when the run left it unfinished on purpose (the player or operator never acts), a
      `waiting_on` naming what it waits for, with its workflow still running to wait.

    Anything else open is hung: not listed, listed with the status echoed back, or waiting
    on nothing that will come."""
    listed: list[str] = []
    unexplained: list[str] = []
    for p in open_payments:
        item = stuck.get(p.id)
        extra = f"; providers: {p.money}" if p.money else ""
        if item is None:
            unexplained.append(
                f"{p.id} ({p.kind} {p.status}, workflow {p.workflow}): not listed by "
                f"/v1/ops/stuck{extra}"
            )
            continue
        reason = item.get("stuck_reason")
        waiting = str(item.get("waiting_on") or "")
        if names_something(reason, p.status):
            listed.append(f"{p.id} {p.status}: stuck_reason {reason}{extra}")
        elif p.expect_open and names_something(waiting, p.status) and p.workflow == "RUNNING":
            listed.append(f"{p.id} {p.status} (left open on purpose): {waiting}{extra}")
        else:
            why = "not flagged stuck" if not reason else f"stuck_reason {reason!r} says nothing"
            unexplained.append(
                f"{p.id} ({p.kind} {p.status}, workflow {p.workflow}): {why}; waiting_on "
                f"{waiting!r}{extra}"
            )
    return listed, unexplained


# -- the day's reconciliation --------------------------------------------------------------------


@dataclass(frozen=True)
class ClearingDay:
    """One provider's business day after the run's reconciliation, as `GET /v1/finance/recon`
    shows it: the clearing and difference balances at the end of the day (debits minus
    credits) and the money of the cases still open (`held`: positive when received and not
    booked, which the difference account holds as a credit)."""

    provider: str
    date: str
    currency: str
    clearing: int
    difference: int
    open_cases: int  # opened for this day and still open
    open_held: int  # their money
    outstanding_held: int  # the money of every case still open at the end of the day
    reconciled: str  # what the run's reconciliation of the day said: completed, failed: ...

    @classmethod
    def from_json(cls, row: Mapping[str, Any], reconciled: str) -> "ClearingDay":
        return cls(
            provider=str(row["provider"]),
            date=str(row["date"]),
            currency=str(row["currency"]),
            clearing=int(row["clearing_balance"]),
            difference=int(row["difference_balance"]),
            open_cases=int(row["open_cases"]),
            open_held=int(row["open_cases_amount"]),
            outstanding_held=int(row["outstanding_cases_amount"]),
            reconciled=reconciled,
        )

    @property
    def unexplained(self) -> int:
        """What neither the settlement nor an open case accounts for: the clearing left over
        (a day settled sweeps it to zero) plus what the difference account holds beyond the
        open cases' money."""
        return self.clearing + self.difference + self.outstanding_held

    @property
    def explained(self) -> bool:
        return self.clearing == 0 and self.difference + self.outstanding_held == 0

    def describe(self) -> str:
        return (
            f"{self.provider} {self.date} {self.currency}: clearing {self.clearing}, difference "
            f"{self.difference}, open cases {self.open_cases} (their money {self.open_held}; "
            f"every open case's {self.outstanding_held}), reconciliation {self.reconciled}"
        )


def judge_clearing(days: Sequence[ClearingDay]) -> list[str]:
    """A provider's clearing after the day's reconciliation is zero, and what the settlement
    parked in the difference account is exactly the money of the cases still open: anything
    else is money nobody can explain (a day not reconciled, a posting after the settlement, a
    case closed without moving its money)."""
    return [f"{day.describe()}: {day.unexplained} unexplained" for day in days if not day.explained]


def clearing_table(days: Sequence[ClearingDay]) -> list[str]:
    """The printed table: one row per provider, day and currency."""
    head = (
        f"{'provider':<16} {'date':<10} {'cur':<3} {'clearing':>12} {'difference':>12} "
        f"{'open cases':>10} {'their money':>12} {'explained':>9}  reconciliation"
    )
    rows = [head]
    for d in days:
        rows.append(
            f"{d.provider:<16} {d.date:<10} {d.currency:<3} {d.clearing:>12} {d.difference:>12} "
            f"{d.open_cases:>10} {d.outstanding_held:>12} {'yes' if d.explained else 'NO':>9}  "
            f"{d.reconciled}"
        )
    return rows
