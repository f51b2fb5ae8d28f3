"""A payment written but never started (the API died between commit and start_workflow) is
picked up by `POST /v1/ops/reconcile`; running and finished ones are left alone."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.routers.withdrawals import withdrawal_workflow_id
from db import ledger as ledger_store
from db import withdrawals as withdrawal_store
from domain.ledger import withdrawal_hold
from domain.withdrawals import destination_fingerprint
from tests.conftest import new_player
from tests.test_withdrawals import balance, fresh_iban, fund


async def test_reconcile_starts_what_never_started(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    withdrawal_id = f"wd_{uuid.uuid4().hex[:24]}"
    iban = fresh_iban()
    async with sessions.begin() as session:  # what POST /v1/withdrawals commits, then "crash"
        await withdrawal_store.create_withdrawal(
            session,
            withdrawal_id=withdrawal_id,
            player_id=player,
            amount_minor=20_000_00,
            currency="KZT",
            method="bank_transfer",
            destination={"iban": iban},
            destination_fingerprint=destination_fingerprint("bank_transfer", iban),
            provider="kazbank",
            approvals_needed=1,
            workflow_id=withdrawal_workflow_id(withdrawal_id),
            created_at=datetime.now(UTC) - timedelta(minutes=5),
        )
        await ledger_store.post_transaction(
            session,
            spec=withdrawal_hold(
                withdrawal_id=withdrawal_id,
                player_id=player,
                provider="kazbank",
                amount_minor=20_000_00,
                currency="KZT",
            ),
        )
    assert await balance(api, player) == (30_000_00, 20_000_00)

    forbidden = await api.post("/v1/ops/reconcile")
    assert forbidden.status_code == 403
    first = await operator_api.post("/v1/ops/reconcile", params={"older_than": "1m"})
    assert first.status_code == 200, first.text
    assert withdrawal_id in first.json()["started"]
    again = await operator_api.post("/v1/ops/reconcile", params={"older_than": "1m"})
    assert withdrawal_id not in again.json()["started"]  # running now: left alone

    approved = await operator_api.post(f"/v1/withdrawals/{withdrawal_id}/approve")
    assert approved.status_code == 200, approved.text
    await temporal_client.get_workflow_handle(withdrawal_workflow_id(withdrawal_id)).result()
    done = (await api.get(f"/v1/withdrawals/{withdrawal_id}")).json()
    assert done["status"] == "paid"
    assert await balance(api, player) == (30_000_00, 0)
    after = await operator_api.post("/v1/ops/reconcile", params={"older_than": "1m"})
    assert withdrawal_id not in after.json()["started"]
