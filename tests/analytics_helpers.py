"""Hand-computed analytics fixtures: rows inserted straight into a time window of their own.

Each caller passes a `base` day far in the past (unique to that test), so whatever other tests
create never falls into the window. The expected figures are written out in the tests.
"""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Deposit, PaymentEvent, Player, Withdrawal

APPROVE: dict[str, Any] = {"decision": "approve", "score": 0, "reasons": []}
REVIEW: dict[str, Any] = {"decision": "review", "score": 60, "reasons": ["large_amount"]}
DECLINE: dict[str, Any] = {"decision": "decline", "score": 95, "reasons": ["velocity"]}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _player() -> Player:
    return Player(
        id=_id("pl"),
        external_id=f"analytics-{uuid.uuid4().hex}",
        iin="900101300000",
        full_name="Analytics Fixture",
        birth_date=date(1990, 1, 1),
        phone="+77010000000",
    )


def _deposit(
    player: Player,
    *,
    at: datetime,
    amount: int,
    status: str,
    method: str = "card",
    provider: str | None = "halyk",
    reason: str | None = None,
    risk: dict[str, Any] | None = None,
    done_after: float | None = None,
) -> list[Any]:
    dep_id = _id("dep")
    rows: list[Any] = [
        Deposit(
            id=dep_id,
            player_id=player.id,
            amount_minor=amount,
            currency="KZT",
            method=method,
            status=status,
            status_reason=reason,
            provider=provider,
            risk=risk or APPROVE,
            workflow_id=f"deposit-{dep_id}",
            created_at=at,
            updated_at=at,
        ),
        PaymentEvent(payment_id=dep_id, status="pending", occurred_at=at),
    ]
    if done_after is not None:
        rows.append(
            PaymentEvent(
                payment_id=dep_id, status=status, occurred_at=at + timedelta(seconds=done_after)
            )
        )
    return rows


def _withdrawal(
    player: Player,
    *,
    at: datetime,
    amount: int,
    status: str,
    method: str = "card",
    provider: str = "halyk",
    reason: str | None = None,
    risk: dict[str, Any] | None = None,
    done_after: float | None = None,
) -> list[Any]:
    wd_id = _id("wd")
    rows: list[Any] = [
        Withdrawal(
            id=wd_id,
            player_id=player.id,
            amount_minor=amount,
            currency="KZT",
            method=method,
            destination={"display": "fixture"},
            destination_fingerprint=uuid.uuid4().hex,
            status=status,
            status_reason=reason,
            provider=provider,
            risk=risk or APPROVE,
            approvals_needed=1,
            workflow_id=f"withdrawal-{wd_id}",
            created_at=at,
            updated_at=at,
        ),
        PaymentEvent(payment_id=wd_id, status="pending", occurred_at=at),
    ]
    if done_after is not None:
        rows.append(
            PaymentEvent(
                payment_id=wd_id, status=status, occurred_at=at + timedelta(seconds=done_after)
            )
        )
    return rows


async def insert_fixture(sessions: async_sessionmaker[AsyncSession], base: date) -> list[str]:
    """The window is [base, base + 2 days). Expected figures: see tests/test_analytics.py.

    Returns the ids of the payments inserted."""
    day1 = datetime(base.year, base.month, base.day, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    a, b, c = _player(), _player(), _player()
    rows: list[Any] = [a, b, c]
    # A deposited before the window, so A is not a first-time depositor in it.
    rows += _deposit(a, at=day1 - timedelta(days=9), amount=5_000, status="succeeded", done_after=5)
    rows += _deposit(
        a, at=day1 + timedelta(hours=10), amount=100_000, status="succeeded", done_after=10
    )
    rows += _deposit(
        b, at=day1 + timedelta(hours=11), amount=250_001, status="succeeded", done_after=30
    )
    rows += _deposit(
        b,
        at=day1 + timedelta(hours=12),
        amount=50_000,
        status="declined",
        reason="risk: velocity",
        risk=DECLINE,
        done_after=1,
    )
    rows += _deposit(
        c,
        at=day2 + timedelta(hours=9),
        amount=70_000,
        status="succeeded",
        method="ewallet",
        provider="kaspi",
        risk=REVIEW,
        done_after=90,
    )
    rows += _deposit(
        c,
        at=day2 + timedelta(hours=10),
        amount=20_000,
        status="failed",
        method="ewallet",
        provider="kaspi",
        reason="insufficient_funds",
        done_after=4,
    )
    rows += _deposit(a, at=day2 + timedelta(hours=11), amount=30_000, status="processing")
    # Just past the window's end (exclusive): never counted.
    rows += _deposit(
        b, at=day1 + timedelta(days=2), amount=1_000_000, status="succeeded", done_after=1
    )
    rows += _withdrawal(
        a, at=day1 + timedelta(hours=15), amount=60_000, status="paid", done_after=120
    )
    rows += _withdrawal(
        b,
        at=day2 + timedelta(hours=12),
        amount=40_000,
        status="rejected",
        method="bank_transfer",
        provider="kzbank",
        reason="operator: suspicious",
        risk=REVIEW,
        done_after=300,
    )
    rows += _withdrawal(
        c,
        at=day2 + timedelta(hours=13),
        amount=10_000,
        status="in_review",
        method="ewallet",
        provider="kaspi",
        risk=REVIEW,
    )
    async with sessions.begin() as session:
        session.add_all(rows[:3])
        await session.flush()
        session.add_all(rows[3:])
    return [r.id for r in rows[3:] if isinstance(r, Deposit | Withdrawal)]
