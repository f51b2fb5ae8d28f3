"""Real providers are not polite: they process a request and then answer 5xx, drop the
connection after processing, throttle, resend the same callback, and take hours to pay out.
Each case here ends with one charge (or payout) at one provider and one ledger posting."""

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tests import test_gateway as gateway
from tests.conftest import card_deposit, new_player
from tests.histories_helpers import keep
from tests.test_gateway import THREE_DS_CARD, _at_provider, _create, _credits, _finish
from tests.test_withdrawals import balance, create, finished, fund, iban_withdrawal, kinds

api_server = gateway.api_server  # the API on the port the simulator calls back
sim = gateway.sim  # the simulator's admin API, reset after each test


async def _approved_payout(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[str, dict[str, Any]]:
    """A funded player's 30,000 KZT payout to a new IBAN, approved, and its final view."""
    player = await new_player(api)
    await fund(sessions, player, 50_000_00, wagered=True)
    created = await create(api, iban_withdrawal(player, 30_000_00))
    await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    done: dict[str, Any] = await finished(api, temporal_client, created)
    assert done["status"] == "paid", done
    return player, done


async def _money_moved(sim: httpx.AsyncClient, reference: str) -> list[str]:
    held: list[dict[str, Any]] = (
        await sim.get("/admin/charges", params={"reference": reference})
    ).json()
    return [h["provider"] for h in held if h["money_moved"]]


@pytest.mark.parametrize(
    "fault",
    [
        {"error_after_processing_next": 1, "error_after_processing_status": 502},
        {"error_after_processing_next": 1, "error_after_processing_status": 500},
        {"reset_after_processing_next": 1},
    ],
    ids=["processed-then-502", "processed-then-500", "processed-then-reset"],
)
async def test_a_charge_processed_then_failed_is_found_not_charged_elsewhere(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fault: dict[str, Any],
) -> None:
    await sim.put("/admin/providers/halyk/behaviour", json=fault)
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player))
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk"), done
    assert await _money_moved(sim, deposit["id"]) == ["halyk"]
    for other in ("freedom", "cloudpayments"):  # no failover from an unknown outcome
        log = (await sim.get(f"/admin/providers/{other}/charges/{deposit['id']}")).json()
        assert log["calls"] == 0, other
    assert await _credits(sessions, deposit["id"]) == 1
    name = "reset" if "reset_after_processing_next" in fault else "5xx"
    await keep(temporal_client, deposit["workflow_id"], f"deposit_card_processed_then_{name}")


async def test_a_throttled_payout_waits_retry_after_and_pays_at_the_same_provider(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """429 with Retry-After: refused before processing, so waited out and asked again there."""
    await sim.put(
        "/admin/payouts/kazbank/behaviour",
        json={"throttle_next": 1, "throttle_retry_after_seconds": 1},
    )
    _, done = await _approved_payout(api, operator_api, temporal_client, sessions)
    created = done
    outcomes = [(a["step"], a["outcome"], a["error_code"]) for a in done["attempts"]]
    assert outcomes[0] == ("payout", "error", "throttled"), outcomes
    assert await _money_moved(sim, created["id"]) == ["kazbank"]
    assert kinds(done) == ["withdrawal_hold", "withdrawal_paid"]


async def test_the_same_callback_event_three_times_credits_once(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Halyk's postLink after 3-D Secure, delivered three times byte for byte (Halyk sends no
    event id: the body is the delivery's key): taken once, credited once."""
    await sim.put("/admin/providers/halyk/behaviour", json={"callback_same_event_repeat": 2})
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player, number=THREE_DS_CARD))
    await _at_provider(sim, "halyk", deposit["id"])
    await sim.post(f"/pay/halyk/{deposit['id']}/confirm")
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk"), done
    sent = await _delivered(sim, deposit["id"], 3)
    assert [c.get("repeat", False) for c in sent] == [False, True, True], sent
    async with sessions() as session:
        receipts = await session.scalar(
            text(
                "SELECT count(*) FROM webhook_receipts WHERE provider = 'halyk' AND reference = :r"
            ),
            {"r": deposit["id"]},
        )
    assert receipts == 1  # the two repeats were answered `duplicate`
    assert await _credits(sessions, deposit["id"]) == 1


async def _delivered(sim: httpx.AsyncClient, reference: str, count: int) -> list[dict[str, Any]]:
    """The callbacks the simulator delivered for the reference, once there are `count`
    (deliveries run in the simulator: no event to await)."""
    deadline = time.monotonic() + 20
    while True:
        sent: list[dict[str, Any]] = (
            await sim.get("/admin/callbacks", params={"reference": reference})
        ).json()
        if len(sent) >= count or time.monotonic() > deadline:
            assert len(sent) == count, sent
            return sent
        await asyncio.sleep(0.05)


async def test_a_payout_processed_then_504_is_paid_once_and_posted_once(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sim.put(
        "/admin/payouts/kazbank/behaviour",
        json={"error_after_processing_next": 1, "error_after_processing_status": 504},
    )
    player, done = await _approved_payout(api, operator_api, temporal_client, sessions)
    created = done
    assert kinds(done) == ["withdrawal_hold", "withdrawal_paid"]
    log = (await sim.get(f"/admin/payouts/kazbank/{created['id']}")).json()
    assert log["calls"] == 1  # the retry asked first instead of paying again
    assert await balance(api, player) == (20_000_00, 0)
    await keep(temporal_client, created["workflow_id"], "withdrawal_payout_processed_then_504")


async def test_a_payout_processing_for_a_while_is_polled_until_paid(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await sim.put("/admin/payouts/kazbank/behaviour", json={"payout_processing_seconds": 2})
    _, done = await _approved_payout(api, operator_api, temporal_client, sessions)
    assert kinds(done) == ["withdrawal_hold", "withdrawal_paid"]
    outcomes = [(a["step"], a["outcome"]) for a in done["attempts"]]
    assert ("payout", "processing") in outcomes, outcomes  # an answer, not an error retried
    await keep(temporal_client, done["workflow_id"], "withdrawal_payout_processing_polled")


async def test_an_inquiry_answered_401_never_fails_a_charge_that_happened(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sim: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The charge is processed but answered after our timeout; the inquiries that follow meet
    401 (expired credentials) twice. They are retried, not read as a refusal: the charge is
    found at halyk, credited once, and freedom is never asked."""
    await sim.put(
        "/admin/providers/halyk/behaviour", json={"timeout_next": 1, "timeout_seconds": 3}
    )
    player = await new_player(api)
    deposit = await _create(api, card_deposit(player))
    await _at_provider(sim, "halyk", deposit["id"])  # the charge is stored: answer pending
    await sim.put("/admin/providers/halyk/behaviour", json={"expire_credentials_next": 2})
    done = await _finish(api, temporal_client, deposit)
    assert (done["status"], done["provider"]) == ("succeeded", "halyk"), done
    codes = [a["error_code"] for a in done["attempts"]]
    assert "token_expired" in codes, done["attempts"]  # the 401 did happen
    assert await _money_moved(sim, deposit["id"]) == ["halyk"]
    for other in ("freedom", "cloudpayments"):
        log = (await sim.get(f"/admin/providers/{other}/charges/{deposit['id']}")).json()
        assert log["calls"] == 0, other
    assert await _credits(sessions, deposit["id"]) == 1
