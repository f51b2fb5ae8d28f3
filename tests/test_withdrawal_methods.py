"""Every payout method the contract names reaches `paid`: card, IBAN, e-wallet, mobile banking."""

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tests.conftest import card_deposit, deposit_and_wait, new_player, player_body
from tests.test_withdrawals import balance, create, finished, fresh_iban, fund, wager

FOREIGN_IP = "95.24.1.1"  # a Russian range in the sample GeoIP database (risk.geoip_sample)


@pytest.mark.parametrize(
    ("method", "destination"),
    [
        ("bank_transfer", {"iban": fresh_iban()}),
        ("ewallet", {"wallet_account": "tenge-wallet-770112"}),
        ("mobile_banking", {"phone": "+77011234567"}),
    ],
)
async def test_each_method_pays_out(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
    method: str,
    destination: dict[str, Any],
) -> None:
    created_player = await api.post("/v1/players", json=player_body(phone="+77011234567"))
    player = created_player.json()["id"]
    await fund(sessions, player, 40_000_00, wagered=True)
    body = {
        "player_id": player,
        "amount": 25_000_00,
        "currency": "KZT",
        "method": method,
        "destination": destination,
    }
    created = await create(api, body)
    assert created["destination"] == destination
    # A first payout to a new destination is reviewed; an operator approves it.
    approved = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert approved.status_code == 200, approved.text
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid", done
    assert done["attempts"][-1]["outcome"] == "paid"
    assert await balance(api, player) == (15_000_00, 0)


async def test_card_payout_back_to_the_card_of_a_deposit(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player, 60_000_00))
    assert deposit["status"] == "succeeded"
    await wager(sessions, player, 60_000_00)
    body = {
        "player_id": player,
        "amount": 20_000_00,
        "currency": "KZT",
        "method": "card",
        "destination": {"deposit_id": deposit["id"]},
    }
    created = await create(api, body)
    assert created["destination"]["card"]["last4"] == "4242"
    if created["status"] != "paid":
        await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    done = await finished(api, temporal_client, created)
    assert done["status"] == "paid", done

    stranger = await new_player(api)
    await fund(sessions, stranger, 40_000_00, wagered=True)
    refused = await api.post(
        "/v1/withdrawals",
        json={**body, "player_id": stranger},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "card_not_owned"


async def test_holder_name_and_client_reach_the_fraud_rules(
    api: httpx.AsyncClient,
    operator_api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = await new_player(api)  # "Aigerim Tulegenova"
    await fund(sessions, player, 40_000_00, wagered=True)
    body = {
        "player_id": player,
        "amount": 10_000_00,
        "currency": "KZT",
        "method": "bank_transfer",
        "destination": {"iban": fresh_iban(), "holder_name": "Someone Else"},
        "client": {"ip": FOREIGN_IP, "device_id": f"dev-{uuid.uuid4().hex[:8]}"},
    }
    # Someone else's account is refused outright (issue 18, closed loop: payouts beyond the
    # deposits go only to methods in the player's own name).
    refused = await api.post(
        "/v1/withdrawals", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "destination_not_in_player_name")
    # The player's own name, in Cyrillic and the other word order, reaches the rules.
    own = {**body, "destination": {"iban": fresh_iban(), "holder_name": "Тулегенова Айгерим"}}
    created = await create(api, own)
    assert created["destination"]["holder_name"] == "Тулегенова Айгерим"
    # An approval waits for the risk verdict (409 once risk has declined it outright).
    approved = await operator_api.post(f"/v1/withdrawals/{created['id']}/approve")
    assert approved.status_code in (200, 409), approved.text
    shown = await finished(api, temporal_client, created)
    assert shown["risk"]["decision"] in ("review", "decline")
    assert "destination_name_mismatch" not in shown["risk"]["reasons"]
    assert "ip_country_not_allowed" in shown["risk"]["reasons"]
    bad = await api.post(
        "/v1/withdrawals",
        json={**body, "destination": {"iban": fresh_iban(), "holder_name": ""}},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_destination"
