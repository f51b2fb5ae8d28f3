"""The parts every payment's response shares (attempts, events, ledger ids); lists and their
keyset cursors are in `api.listing`.

Deposits and withdrawals both keep their trail in payment_attempts / payment_events and their
postings in the ledger, so they are shown one way.
"""

from collections.abc import Iterable

from api.schemas import AttemptOut, EventOut, LedgerTransactionOut
from db.models import LedgerTransaction, PaymentAttempt, PaymentEvent


def attempts_out(attempts: Iterable[PaymentAttempt]) -> list[AttemptOut]:
    return [
        AttemptOut(
            step=a.step,
            attempt=a.attempt_no,
            provider=a.provider,
            outcome=a.outcome,
            error_code=a.error_code,
            unified_code=a.unified_code,
            latency_ms=a.latency_ms,
            at=a.created_at,
        )
        for a in attempts
    ]


def events_out(events: Iterable[PaymentEvent]) -> list[EventOut]:
    return [EventOut(status=e.status, reason=e.reason, at=e.occurred_at) for e in events]


def ledger_out(transactions: Iterable[LedgerTransaction]) -> list[LedgerTransactionOut]:
    return [LedgerTransactionOut(id=t.id, key=t.key, kind=t.kind) for t in transactions]
