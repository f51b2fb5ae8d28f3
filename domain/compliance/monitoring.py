"""Financial monitoring (AML/CFT law No. 191-IV, Art. 4): receiving winnings of 1,000,000 KZT or
more, in cash or not, is an operation subject to financial monitoring.

Two kinds of report go to the compliance queue (`GET /v1/compliance/reports`):

- `threshold`: one payout of winnings at or over the threshold;
- `split`: a series of payouts to one person (across all their accounts), each under the
  threshold, paid within the window (7 days), that together reach it: the pattern of splitting
  a reportable amount. A payout is part of at most one split report.

Thresholds are in KZT from configuration (`PAY_COMPLIANCE_REPORT_THRESHOLD_KZT`,
`PAY_COMPLIANCE_SPLIT_WINDOW_DAYS`). The report's deadline and format at the Financial
Monitoring Agency are not confirmed: the queue keeps every report until an officer marks it
submitted, and exports CSV and JSON.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

ReportKind = Literal["threshold", "split"]


@dataclass(frozen=True)
class PaidOut:
    payment_id: str
    amount_minor: int
    paid_at: datetime


@dataclass(frozen=True)
class Thresholds:
    amount_minor: int  # minor units of KZT
    split_window: timedelta

    @classmethod
    def in_kzt(cls, amount_kzt: int, window_days: int) -> "Thresholds":
        return cls(amount_minor=amount_kzt * 100, split_window=timedelta(days=window_days))


def over_threshold(payout: PaidOut, thresholds: Thresholds) -> bool:
    return payout.amount_minor >= thresholds.amount_minor


def split_series(
    latest: PaidOut, others: Sequence[PaidOut], thresholds: Thresholds
) -> tuple[PaidOut, ...] | None:
    """The series `latest` completes, or None: payouts each under the threshold, paid within
    one window (`split_window` from the first to the last), `latest` among them, that together
    reach the threshold. `others` holds the person's other payouts not yet part of a split
    report, in any order (a payout screened late still joins the series it belongs to)."""
    if over_threshold(latest, thresholds):
        return None
    window = thresholds.split_window
    pieces = sorted(
        [
            p
            for p in others
            if p.payment_id != latest.payment_id
            and not over_threshold(p, thresholds)
            and abs(p.paid_at - latest.paid_at) <= window
        ]
        + [latest],
        key=lambda p: (p.paid_at, p.payment_id),
    )
    for start in pieces:
        if start.paid_at > latest.paid_at:
            break
        series = tuple(p for p in pieces if start.paid_at <= p.paid_at <= start.paid_at + window)
        if (
            len(series) >= 2
            and latest in series
            and sum(p.amount_minor for p in series) >= thresholds.amount_minor
        ):
            return series
    return None
