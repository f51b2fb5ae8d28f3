"""The parts every payment's response shares (attempts, events, ledger ids) and keyset cursors.

Deposits and withdrawals both keep their trail in payment_attempts / payment_events and their
postings in the ledger, so they are shown one way.
"""

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from api.errors import Problem
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


class Keyed(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


K = TypeVar("K", bound=Keyed)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, id) of the last row of the previous page."""
    try:
        stamp, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc


def page_of(rows: Sequence[K], limit: int) -> tuple[Sequence[K], str | None]:
    """The page (rows were fetched with limit + 1) and the cursor for the next one."""
    page = rows[:limit]
    if len(rows) <= limit:
        return page, None
    last = page[-1]
    return page, base64.urlsafe_b64encode(
        f"{last.created_at.isoformat()}|{last.id}".encode()
    ).decode()
