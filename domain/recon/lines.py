"""What a provider's daily report or the bank's statement says, in our terms.

Every report format (each connector's CSV or JSON, the bank's camt.053 XML or CSV) is parsed at
its boundary into these records, streamed line by line: the matcher never holds a whole report.
Money is integer minor units with its currency; times are aware datetimes in UTC (reports write
Asia/Almaty local times, converted by the parser); the business day is the provider's, in
Asia/Almaty.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

LineKind = Literal[
    "payment",  # money taken from a payer for us (a deposit)
    "refund",  # money returned to a payer (a refund of a deposit)
    "payout",  # money paid to a player (a withdrawal)
    "chargeback",  # money the payer's bank took back
    "chargeback_reversal",  # a chargeback won back
    "transfer_in",  # bank statement: an incoming transfer (a bank-transfer deposit)
    "settlement_in",  # bank statement: a provider's settlement to the operator's account
    "transfer_out",  # bank statement: an outgoing transfer (a payout by the bank)
]


@dataclass(frozen=True, kw_only=True)
class ReportLine:
    """One line of a report. `reference` is our id as the provider knows it (the deposit,
    withdrawal or refund id; None where the provider or the payer gave none, e.g. a transfer
    whose purpose names nothing we know). Amounts are positive; the kind says the direction."""

    line_no: int
    kind: LineKind
    reference: str | None
    provider_id: str | None  # the provider's own transaction id
    amount_minor: int
    currency: str
    fee_minor: int = 0  # what the provider kept for this line
    occurred_at: datetime
    # bank statement lines only: the free-text purpose and who paid
    purpose: str | None = None
    payer_name: str | None = None
    payer_iin: str | None = None
    payer_iban: str | None = None


@dataclass(frozen=True, kw_only=True)
class ReportHeader:
    """The report as a whole: whose, which business day, what was settled and when."""

    provider: str
    business_date: date
    currency: str
    net_settled_minor: int  # paid to the operator's bank account for this day (may be negative)
    settlement_date: date | None
    format: str  # e.g. "halyk_epay.csv", "camt.053"
