"""Withdrawals end to end on the time-skipping server: hold, risk, review, payout, post/void."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from db import ledger as ledger_store
from domain.iban import with_check_digits
from domain.ledger import deposit_credit, game_transaction
from tests.approval_helpers import person_key
from tests.conftest import _client, _result, card_deposit, deposit_and_wait, new_player
from tests.ledger_helpers import assert_invariants


def fresh_iban() -> str:
    """An IBAN no other test pays to: shared destinations are a fraud signal of their own."""
    return with_check_digits("125" + uuid.uuid4().hex[:13].upper())


def closed_iban() -> str:
    """The simulated bank refuses payouts to accounts starting 999 (account closed)."""
    return with_check_digits("125" + "999" + uuid.uuid4().hex[:10].upper())


async def fund(
    sessions: async_sessionmaker[AsyncSession], player_id: str, amount: int, *, wagered: bool
) -> None:
    """Credit the wallet as a deposit would; `wagered` also plays the amount through once."""
    await ledger_store.post(
        sessions,
        deposit_credit(
            deposit_id=f"dep_{uuid.uuid4().hex[:12]}",
            player_id=player_id,
            provider="halyk",
            amount_minor=amount,
            currency="KZT",
        ),
    )
    if wagered:
        await wager(sessions, player_id, amount)


async def wager(sessions: async_sessionmaker[AsyncSession], player_id: str, amount: int) -> None:
    """A bet of `amount` and an equal win: turnover without changing the balance."""
    round_id = uuid.uuid4().hex
    for kind in ("bet", "win"):
        await ledger_store.post(
            sessions,
            game_transaction(
                player_id=player_id,
                round_id=round_id,
                type=kind,
                amount_minor=amount,
                currency="KZT",
            ),
        )


def iban_withdrawal(player_id: str, amount: int, iban: str | None = None) -> dict[str, Any]:
    return {
        "player_id": player_id,
        "amount": amount,
        "currency": "KZT",
        "method": "bank_transfer",
        "destination": {"iban": iban or fresh_iban()},
    }


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(
        "/v1/withdrawals", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == 202, response.text
    created: dict[str, Any] = response.json()
    return created


async def finished(api: httpx.AsyncClient, client: Client, withdrawal: dict[str, Any]) -> Any:
    await _result(client.get_workflow_handle(withdrawal["workflow_id"]))
    shown = await api.get(f"/v1/withdrawals/{withdrawal['id']}")
    assert shown.status_code == 200
    return shown.json()


async def balance(api: httpx.AsyncClient, player_id: str) -> tuple[int, int]:
    shown = (await api.get(f"/v1/players/{player_id}")).json()["balance"]
    return shown["available"], shown["held"]


def kinds(withdrawal: dict[str, Any]) -> list[str]:
    return [t["kind"] for t in withdrawal["ledger"]]


async def test_auto_approved_card_payout(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player, 200_000_00))
    assert deposit["status"] == "succeeded"
    await wager(sessions, player, 200_000_00)
    token = await _card_token(sessions, deposit["id"])
    created = await create(
        api,
        {
            "player_id": player,
            "amount": 150_000_00,
            "currency": "KZT",
            "method": "card",
            "destination": {"card_token": token},
        },
    )
    assert created["status"] == "pending"
    assert await balance(api, player) == (50_000_00, 150_000_00)
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid", done
    assert done["risk"]["decision"] == "approve"
    assert [e["status"] for e in done["events"]] == ["pending", "approved", "processing", "paid"]
    assert kinds(done) == ["withdrawal_hold", "withdrawal_paid"]
    assert done["destination"]["card"]["last4"] == "4242"
    assert "number" not in str(done["destination"])
    assert await balance(api, player) == (50_000_00, 0)
    await assert_invariants(sessions)


async def _card_token(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> str:
    from db.models import Deposit

    async with sessions() as session:
        deposit = await session.get_one(Deposit, deposit_id)
        assert deposit.card is not None
        return str(deposit.card["tokens"]["halyk"])


async def test_review_then_approve_records_the_operator(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 60_000_00))  # new destination: review
    approved = await operator_api.post(
        f"/v1/withdrawals/{created['id']}/approve", json={"reason": "documents checked"}
    )
    assert approved.status_code == 200, approved.text
    again = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert again.status_code == 200  # approving twice is harmless
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid"
    assert "new_payout_destination" in done["risk"]["reasons"]
    statuses = [e["status"] for e in done["events"]]
    assert statuses == ["pending", "in_review", "approved", "processing", "paid"]
    [review] = done["reviews"]
    assert review["action"] == "approve"
    assert review["operator_name"] == "test operator"
    assert review["reason"] == "documents checked"
    assert kinds(done) == ["withdrawal_hold", "withdrawal_paid"]
    assert await balance(api, player) == (40_000_00, 0)
    late = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert late.status_code == 409
    assert late.json()["code"] == "invalid_state"


async def test_review_then_reject_releases_the_hold(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=False)  # no play: cycling suspicion
    created = await create(api, iban_withdrawal(player, 90_000_00))
    assert await balance(api, player) == (10_000_00, 90_000_00)
    rejected = await operator_api.post(
        f"/v1/withdrawals/{created['id']}/reject", json={"reason": "deposit without play"}
    )
    assert rejected.status_code == 200, rejected.text
    done = await finished(api, temporal_client, created)
    assert done["status"] == "rejected"
    assert "low_turnover" in done["risk"]["reasons"]  # cycling: deposit, no play
    assert kinds(done) == ["withdrawal_hold", "withdrawal_released"]
    assert await balance(api, player) == (100_000_00, 0)
    for action, body in (("approve", None), ("cancel", None)):
        after = await (operator_api if action == "approve" else api).post(
            f"/v1/withdrawals/{created['id']}/{action}", json=body
        )
        assert after.status_code == 409, action
        assert after.json()["code"] == "invalid_state"
    again = await operator_api.post(
        f"/v1/withdrawals/{created['id']}/reject", json={"reason": "again"}
    )
    assert again.status_code == 200  # the same decision twice is harmless
    await assert_invariants(sessions)


async def test_four_eyes_needs_two_different_operators(
    app: FastAPI,
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 3_000_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 2_500_000_00))
    assert created["approvals_needed"] == 2
    first = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert first.status_code == 200
    same_again = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert same_again.status_code == 200
    assert same_again.json()["status"] == "in_review"  # one operator cannot approve twice
    async with sessions.begin() as session:
        second_key = (await person_key(session, "second operator")).secret  # another person
    async with _client(app, second_key) as second:
        approved = await second.post(f"/v1/withdrawals/{created['id']}/approve")
    assert approved.status_code == 200
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid"
    assert sorted(r["operator_name"] for r in done["reviews"]) == [
        "second operator",
        "test operator",
    ]


async def test_cancel_before_processing(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 20_000_00))
    cancelled = await api.post(f"/v1/withdrawals/{created['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = await finished(api, temporal_client, created)
    assert done["status"] == "cancelled"
    assert kinds(done) == ["withdrawal_hold", "withdrawal_released"]
    assert await balance(api, player) == (50_000_00, 0)
    assert (await api.post(f"/v1/withdrawals/{created['id']}/cancel")).status_code == 200
    approve = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert approve.status_code == 409


async def test_review_that_waits_too_long_is_escalated(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 10_000_00))
    handle = temporal_client.get_workflow_handle(created["workflow_id"])
    queue = await operator_api.get("/v1/withdrawals", params={"status": "in_review"})
    await temporal_env.sleep(timedelta(hours=5))  # the operators are away
    approved = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert approved.status_code == 200
    await handle.result()
    done = (await api.get(f"/v1/withdrawals/{created['id']}")).json()
    assert done["status"] == "paid"
    assert done["escalated_at"] is not None
    description = await handle.describe()
    assert description.typed_search_attributes.get(_escalated()) is True
    escalated = await operator_api.get("/v1/withdrawals", params={"escalated": "true"})
    assert created["id"] in {w["id"] for w in escalated.json()["data"]}
    assert queue.status_code == 200


def _escalated() -> Any:
    from workflows.search_attributes import ESCALATED

    return ESCALATED


async def test_failed_payout_voids_the_hold(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 30_000_00, closed_iban()))
    await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    done = await finished(api, temporal_client, created)
    assert done["status"] == "failed"
    assert done["status_reason"] == "payout_failed:account_closed"
    assert kinds(done) == ["withdrawal_hold", "withdrawal_released"]
    assert await balance(api, player) == (50_000_00, 0)
    await assert_invariants(sessions)


async def test_payout_timeout_is_resolved_by_inquiry_and_paid_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    simulator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    await simulator.put(
        "/admin/payouts/kazbank/behaviour", json={"timeout_next": 1, "timeout_seconds": 3}
    )
    try:
        created = await create(api, iban_withdrawal(player, 30_000_00))
        await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
        done = await finished(api, temporal_client, created)
    finally:
        await simulator.put("/admin/payouts/kazbank/behaviour", json={})
    assert done["status"] == "paid"
    outcomes = [(a["step"], a["outcome"]) for a in done["attempts"]]
    assert outcomes[0] == ("payout", "timeout")
    assert ("payout", "inquiry_paid") in outcomes
    log = (await simulator.get(f"/admin/payouts/kazbank/{created['id']}")).json()
    assert log["payout"]["status"] == "paid"
    assert log["calls"] == 1  # paid once; the retry asked instead of paying again
    assert await balance(api, player) == (20_000_00, 0)


async def test_racing_withdrawals_never_hold_more_than_the_balance(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 100_000_00, wagered=True)
    responses = await asyncio.gather(
        *(
            api.post(
                "/v1/withdrawals",
                json=iban_withdrawal(player, 30_000_00),
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            for _ in range(10)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 3 + [422] * 7
    refused = [r.json()["code"] for r in responses if r.status_code == 422]
    assert set(refused) == {"insufficient_funds"}
    assert await balance(api, player) == (10_000_00, 90_000_00)
    await assert_invariants(sessions)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"method": "bank_transfer", "destination": {"iban": "KZ00125KZT5004100100"}},
            422,
            "invalid_iban",
        ),
        (
            {"method": "bank_transfer", "destination": {"iban": "DE89370400440532013000"}},
            422,
            "invalid_iban",
        ),
        (
            {"method": "card", "destination": {"card_token": "tok_someone_else"}},
            422,
            "card_not_owned",
        ),
        (
            {"method": "mobile_banking", "destination": {"phone": "+77019999999"}},
            422,
            "destination_not_owned",
        ),
        (
            {"method": "mobile_banking", "destination": {"phone": "+79001234567"}},
            422,
            "invalid_phone",
        ),
        ({"method": "ewallet", "destination": {}}, 422, "invalid_destination"),
        ({"currency": "USD"}, 422, "unsupported_currency"),
        ({"amount": 1}, 422, "amount_out_of_range"),
        ({"amount": 1_000_000_00}, 422, "insufficient_funds"),
        ({"player_id": "pl_nobody"}, 404, "player_not_found"),
        ({"amount": 10.5}, 422, "validation_error"),
    ],
)
async def test_bad_requests_change_nothing(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    request = {**iban_withdrawal(player, 10_000_00), **body}
    response = await api.post(
        "/v1/withdrawals", json=request, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert await balance(api, player) == (50_000_00, 0)
    listed = await api.get("/v1/withdrawals", params={"player_id": player})
    assert listed.json()["data"] == []


async def test_roles_on_withdrawals(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    forbidden = await operator_api.post(
        "/v1/withdrawals",
        json=iban_withdrawal(player, 10_000_00),
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert forbidden.status_code == 403
    created = await create(api, iban_withdrawal(player, 10_000_00))
    merchant_approves = await api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert merchant_approves.status_code == 403
    queue = await operator_api.get("/v1/withdrawals", params={"status": "in_review"})
    assert queue.status_code == 200


async def withdrawal_in_review(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], amount: int
) -> dict[str, Any]:
    """A funded player's IBAN withdrawal of `amount`, once the rules sent it to review."""
    player = await new_player(api)
    await fund(sessions, player, amount * 2, wagered=True)
    created = await create(api, iban_withdrawal(player, amount))
    for _ in range(400):
        shown = (await api.get(f"/v1/withdrawals/{created['id']}")).json()
        if shown["status"] == "in_review":
            return created
        await asyncio.sleep(0.05)  # the risk activity's outcome is only in the database
    raise AssertionError(f"withdrawal {created['id']} never reached in_review")
