"""A late-payment case survives its workflow being retried after it credited the deposit.

The chaos run found it: under load the late-payment workflow's task timed out after its case had
credited the deposit (local activities run again on the retry), and the retry's
`open_late_payment` saw a deposit succeeded at that provider and answered `not_late`: the
workflow ended, the player credited once, the case left open for ever. A retry carries on with
the case as it stands: resolved once, never judged anew (as money paid to a credited deposit it
would have become a refund).
"""

import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.late_payments import LatePaymentActivities, OpenLateInput, ResolveLateInput
from tests.conftest import new_player

PROVIDER = "freedom_wallet"
AMOUNT = 250_000


async def _deposit(sessions: async_sessionmaker[AsyncSession], player_id: str, status: str) -> str:
    deposit_id = f"dep_{uuid.uuid4().hex[:24]}"
    async with sessions.begin() as session:
        await session.execute(
            text(
                "INSERT INTO deposits (id, player_id, amount_minor, currency, method, status, "
                "provider, workflow_id) VALUES (:id, :player, :amount, 'KZT', 'ewallet', "
                ":status, :provider, :workflow)"
            ),
            {
                "id": deposit_id,
                "player": player_id,
                "amount": AMOUNT,
                "status": status,
                "provider": PROVIDER,
                "workflow": f"deposit-{deposit_id}",
            },
        )
    return deposit_id


async def test_a_retry_after_the_case_credited_the_deposit_carries_on_with_that_case(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await new_player(api)
    deposit_id = await _deposit(sessions, player, "expired")
    late = LatePaymentActivities(sessions=sessions, policy="credit")
    env = ActivityEnvironment()
    paid = OpenLateInput(
        deposit_id=deposit_id, provider=PROVIDER, amount_minor=AMOUNT, currency="KZT"
    )

    first = await env.run(late.open_late_payment, paid)
    assert (first.resolution, first.policy) == ("open", "credit")
    assert first.case_id > 0

    # The case's credit made the deposit succeeded there; the run is retried before it resolved
    # the case.
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE deposits SET status = 'succeeded' WHERE id = :id"), {"id": deposit_id}
        )
    again = await env.run(late.open_late_payment, paid)
    assert (again.case_id, again.resolution, again.policy) == (first.case_id, "open", "credit")

    await env.run(
        late.resolve_late_payment,
        ResolveLateInput(
            case_id=first.case_id, resolution="credited", occurred_at=datetime.now(UTC)
        ),
    )
    resolved = await env.run(late.open_late_payment, paid)
    assert (resolved.case_id, resolved.resolution) == (first.case_id, "credited")
    async with sessions() as session:
        cases = (
            await session.execute(
                text("SELECT resolution, policy FROM late_payments WHERE deposit_id = :id"),
                {"id": deposit_id},
            )
        ).all()
    assert [tuple(row) for row in cases] == [("credited", "credit")]


async def test_money_a_deposit_was_credited_for_without_a_case_is_not_late(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A repeated success for the credited payment: no case, nothing to refund."""
    player = await new_player(api)
    deposit_id = await _deposit(sessions, player, "succeeded")
    late = LatePaymentActivities(sessions=sessions, policy="credit")
    found = await ActivityEnvironment().run(
        late.open_late_payment,
        OpenLateInput(
            deposit_id=deposit_id, provider=PROVIDER, amount_minor=AMOUNT, currency="KZT"
        ),
    )
    assert (found.case_id, found.resolution) == (0, "not_late")
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM late_payments WHERE deposit_id = :id"), {"id": deposit_id}
        )
    assert count == 0
