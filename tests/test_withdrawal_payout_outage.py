"""A payout provider down for longer than the retries: the inquiry closes the reference at the
provider before the hold is released, so a request still in flight can never pay later."""

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests.conftest import new_player
from tests.test_withdrawals import balance, create, fund, iban_withdrawal, kinds


async def test_outage_longer_than_retries_fails_safely(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    temporal_client: Client,
    simulator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    await simulator.put("/admin/payouts/kazbank/behaviour", json={"error_rate": 1.0})
    try:
        created = await create(api, iban_withdrawal(player, 30_000_00))
        approved = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
        assert approved.status_code == 200
        # Past the payout's give-up window: every try answered 503, so did the first inquiries.
        await temporal_env.sleep(timedelta(seconds=settings.payout_give_up_seconds + 60))
    finally:
        await simulator.put("/admin/payouts/kazbank/behaviour", json={})
    await temporal_env.sleep(timedelta(minutes=6))  # the inquiry's next try reaches the provider
    await temporal_client.get_workflow_handle(created["workflow_id"]).result()
    done = (await api.get(f"/v1/withdrawals/{created['id']}")).json()
    assert done["status"] == "failed"
    assert done["status_reason"] == "payout_failed:cancelled"
    assert kinds(done) == ["withdrawal_hold", "withdrawal_released"]
    assert ("payout_inquiry", "cancelled_failed") in {
        (a["step"], a["outcome"]) for a in done["attempts"]
    }
    assert await balance(api, player) == (50_000_00, 0)

    # A request that was still in flight arrives late: the provider refuses to pay it.
    late = await simulator.post(
        "/providers/kazbank/payouts",
        json={
            "reference": created["id"],
            "amount": 30_000_00,
            "currency": "KZT",
            "method": "bank_transfer",
            "destination": done["destination"],
        },
        headers={"Authorization": f"Bearer {settings.provider_secret('kazbank')}"},
    )
    assert late.status_code == 201
    assert late.json()["status"] == "failed"
    assert late.json()["failure_code"] == "cancelled"
