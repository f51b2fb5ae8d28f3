"""`GET /v1/ops/stuck`: non-terminal payments past a threshold, with attempts and UI links."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.errors import Problem
from api.routers.ops import parse_duration
from db.models import Deposit, PaymentAttempt, Player, Withdrawal


def _player() -> Player:
    return Player(
        id=f"pl_{uuid.uuid4().hex[:20]}",
        external_id=f"stuck-{uuid.uuid4().hex}",
        iin="900101300000",
        full_name="Stuck Fixture",
        birth_date=date(1990, 1, 1),
        phone="+77010000000",
    )


def _deposit(player: Player, status: str, since: datetime) -> Deposit:
    dep_id = f"dep_{uuid.uuid4().hex[:20]}"
    return Deposit(
        id=dep_id,
        player_id=player.id,
        amount_minor=123_400,
        currency="KZT",
        method="card",
        status=status,
        provider="halyk",
        workflow_id=f"deposit-{dep_id}",
        created_at=since - timedelta(minutes=1),
        updated_at=since,
    )


@pytest.fixture
async def stuck_rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    now = datetime.now(UTC)
    player = _player()
    old_processing = _deposit(player, "processing", now - timedelta(hours=1))
    old_succeeded = _deposit(player, "succeeded", now - timedelta(hours=1))
    fresh_processing = _deposit(player, "processing", now - timedelta(minutes=1))
    wd_id = f"wd_{uuid.uuid4().hex[:20]}"
    in_review = Withdrawal(
        id=wd_id,
        player_id=player.id,
        amount_minor=50_000,
        currency="KZT",
        method="bank_transfer",
        destination={"iban": "KZ…0001"},
        destination_fingerprint=uuid.uuid4().hex,
        status="in_review",
        provider="kzbank",
        approvals_needed=1,
        workflow_id=f"withdrawal-{wd_id}",
        created_at=now - timedelta(hours=2),
        updated_at=now - timedelta(hours=2),
    )
    attempts = [
        PaymentAttempt(
            payment_id=old_processing.id,
            step=step,
            attempt_no=n,
            provider="halyk",
            outcome=outcome,
            error_code=code,
            latency_ms=1000,
        )
        for step, n, outcome, code in [
            ("charge", 1, "timeout", "provider_timeout"),
            ("charge", 2, "error", "provider_unavailable"),
            ("inquiry", 1, "unknown", None),
        ]
    ]
    async with sessions.begin() as session:
        session.add(player)
        await session.flush()
        session.add_all([old_processing, old_succeeded, fresh_processing, in_review])
        await session.flush()
        session.add_all(attempts)
    return {
        "old": old_processing.id,
        "done": old_succeeded.id,
        "fresh": fresh_processing.id,
        "review": wd_id,
    }


async def test_stuck_payments_found(
    stuck_rows: dict[str, Any], operator_api: httpx.AsyncClient
) -> None:
    response = await operator_api.get("/v1/ops/stuck", params={"older_than": "10m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["older_than_seconds"] == 600
    by_id = {p["id"]: p for p in body["data"]}
    assert stuck_rows["done"] not in by_id
    assert stuck_rows["fresh"] not in by_id
    dep = by_id[stuck_rows["old"]]
    assert dep["kind"] == "deposit"
    assert dep["status"] == "processing"
    assert dep["attempts"] == 3
    assert dep["last_attempt"]["step"] == "inquiry"
    assert "provider's result" in dep["waiting_on"]
    assert "last step inquiry #1" in dep["waiting_on"]
    assert dep["stuck_seconds"] >= 3600
    assert dep["temporal_url"] == (
        f"http://127.0.0.1:8233/namespaces/default/workflows/deposit-{stuck_rows['old']}"
    )
    wd = by_id[stuck_rows["review"]]
    assert wd["kind"] == "withdrawal"
    assert wd["attempts"] == 0
    assert wd["last_attempt"] is None
    assert wd["waiting_on"].startswith("an operator's review")
    # The oldest first.
    ids = [p["id"] for p in body["data"]]
    assert ids.index(stuck_rows["review"]) < ids.index(stuck_rows["old"])
    # The time-skipping test server may not answer list queries: either way it says so.
    visibility = body["visibility"]
    assert visibility["detail"]
    if visibility["available"]:
        assert dep["temporal"] == {"running": False, "payment_status": None}
    else:
        assert dep["temporal"] is None
        assert "database view only" in visibility["detail"]

    shorter = await operator_api.get("/v1/ops/stuck", params={"older_than": "30s"})
    assert stuck_rows["fresh"] in {p["id"] for p in shorter.json()["data"]}


async def test_stuck_input_and_roles(
    operator_api: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    bad = await operator_api.get("/v1/ops/stuck", params={"older_than": "soon"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_duration"
    assert (await api.get("/v1/ops/stuck")).status_code == 403


def test_parse_duration() -> None:
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("10m") == timedelta(minutes=10)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d") == timedelta(days=1)
    with pytest.raises(Problem):
        parse_duration("-5m")
