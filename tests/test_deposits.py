"""Card deposits end to end through the API, on the time-skipping Temporal server, with the
simulator over HTTP and the ledger in PostgreSQL."""

import asyncio
import json
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from tests.conftest import (
    VISA_DECLINED,
    VISA_OK,
    card_deposit,
    deposit_and_wait,
    new_player,
)
from workflows import search_attributes as sa

BEHAVIOUR = "/admin/providers/halyk/behaviour"


async def _ledger_count(sessions: async_sessionmaker[AsyncSession], deposit_id: str) -> int:
    """How many wallet credits the deposit posted (its fee is a separate transaction)."""
    async with sessions() as session:
        count = await session.scalar(
            text(
                "SELECT count(*) FROM ledger_transactions "
                "WHERE payment_id = :id AND kind = 'deposit_credit'"
            ),
            {"id": deposit_id},
        )
    return int(count or 0)


async def _charge_log(simulator: httpx.AsyncClient, deposit_id: str) -> dict[str, object]:
    log: dict[str, object] = (
        await simulator.get(f"/admin/providers/halyk/charges/{deposit_id}")
    ).json()
    return log


async def test_card_deposit_succeeds_and_credits_wallet(
    api: httpx.AsyncClient, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player_id = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id, 750_000))

    assert deposit["status"] == "succeeded"
    assert deposit["card"] == {
        "bin": "424242",
        "last4": "4242",
        "scheme": "visa",
        "issuer_country": "KZ",
    }
    assert [e["status"] for e in deposit["events"]] == ["pending", "processing", "succeeded"]
    assert deposit["risk"].pop("version")  # the rule set that decided
    assert deposit["risk"] == {"decision": "approve", "score": 0, "reasons": []}
    assert [(a["outcome"], a["attempt"]) for a in deposit["attempts"]] == [("succeeded", 1)]
    # The credit and the fee are posted concurrently through group commit: in either order.
    assert sorted(t["key"] for t in deposit["ledger"]) == [
        f"deposit:{deposit['id']}:credit",
        f"deposit:{deposit['id']}:fee",
    ]

    player = (await api.get(f"/v1/players/{player_id}")).json()
    assert player["balance"] == {"currency": "KZT", "available": 750_000, "held": 0}

    description = await temporal_client.get_workflow_handle(deposit["workflow_id"]).describe()
    attributes = description.typed_search_attributes
    assert attributes.get(sa.PAYMENT_STATUS) == "succeeded"
    assert attributes.get(sa.PAYMENT_METHOD) == "card"
    assert attributes.get(sa.PLAYER_ID) == player_id
    assert attributes.get(sa.AMOUNT_MINOR) == 750_000


async def test_two_provider_5xx_still_one_charge_one_posting(
    api: httpx.AsyncClient,
    temporal_client: Client,
    simulator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    await simulator.put(BEHAVIOUR, json={"fail_next": 2})

    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id))

    assert deposit["status"] == "succeeded"
    outcomes = [(a["attempt"], a["outcome"], a["error_code"]) for a in deposit["attempts"]]
    # 503 temporarily_unavailable: the acquirer's documented "nothing processed" answer.
    unavailable = "temporarily_unavailable"
    assert outcomes == [
        (1, "error", unavailable),
        (2, "error", unavailable),
        (3, "succeeded", None),
    ]
    log = await _charge_log(simulator, deposit["id"])
    assert log["calls"] == 3
    assert isinstance(log["charge"], dict)
    assert log["charge"]["status"] == "succeeded"
    assert await _ledger_count(sessions, deposit["id"]) == 1


async def test_timeout_is_resolved_by_status_inquiry_not_a_second_charge(
    api: httpx.AsyncClient,
    temporal_client: Client,
    simulator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    # The provider charges, then answers after our 1 s client timeout: an ambiguous outcome.
    await simulator.put(BEHAVIOUR, json={"timeout_next": 1, "timeout_seconds": 3})

    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id))

    assert deposit["status"] == "succeeded"
    outcomes = [a["outcome"] for a in deposit["attempts"]]
    assert outcomes == ["timeout", "inquiry_succeeded"]
    assert (await _charge_log(simulator, deposit["id"]))["calls"] == 1
    assert await _ledger_count(sessions, deposit["id"]) == 1


async def test_declined_card_fails_without_posting(
    api: httpx.AsyncClient, temporal_client: Client, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player_id = await new_player(api)
    deposit = await deposit_and_wait(
        api, temporal_client, card_deposit(player_id, number=VISA_DECLINED)
    )
    assert deposit["status"] == "failed"
    assert deposit["status_reason"] == "provider_declined:insufficient_funds"
    assert deposit["ledger"] == []
    assert await _ledger_count(sessions, deposit["id"]) == 0


async def test_risk_declines_amount_below_minimum(
    api: httpx.AsyncClient, temporal_client: Client, simulator: httpx.AsyncClient
) -> None:
    player_id = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id, amount=50_00))
    assert deposit["status"] == "declined"
    assert deposit["risk"]["decision"] == "decline"
    assert deposit["risk"]["reasons"] == ["amount_below_minimum"]
    assert deposit["attempts"] == []
    assert (await _charge_log(simulator, deposit["id"]))["calls"] == 0


async def test_velocity_rule_reads_player_history(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player_id = await new_player(api)
    statuses = [
        (await deposit_and_wait(api, temporal_client, card_deposit(player_id)))["status"]
        for _ in range(6)
    ]
    assert statuses == ["succeeded"] * 5 + ["declined"]


async def test_same_idempotency_key_concurrently_creates_one_deposit(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    body = card_deposit(player_id)
    headers = {"Idempotency-Key": f"concurrent-{uuid.uuid4().hex}"}

    responses = await asyncio.gather(
        *(api.post("/v1/deposits", json=body, headers=headers) for _ in range(8))
    )

    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM deposits WHERE player_id = :p"), {"p": player_id}
        )
    assert count == 1
    await temporal_client.get_workflow_handle(responses[0].json()["workflow_id"]).result()
    replay = await api.post("/v1/deposits", json=body, headers=headers)
    assert replay.status_code == 202
    assert replay.json()["status"] == "succeeded"

    changed = await api.post("/v1/deposits", json={**body, "amount": 500_001}, headers=headers)
    assert changed.status_code == 409
    assert changed.json()["code"] == "idempotency_key_reused"


async def test_card_number_is_never_stored_or_in_history(
    api: httpx.AsyncClient,
    temporal_client: Client,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player_id = await new_player(api)
    deposit = await deposit_and_wait(api, temporal_client, card_deposit(player_id))

    history = await temporal_client.get_workflow_handle(deposit["workflow_id"]).fetch_history()
    assert VISA_OK not in json.dumps(history.to_json_dict())
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT d::text FROM deposits d WHERE id = :id "
                "UNION ALL SELECT k::text FROM idempotency_keys k "
                "UNION ALL SELECT a::text FROM payment_attempts a WHERE payment_id = :id"
            ),
            {"id": deposit["id"]},
        )
        dumped = "\n".join(row[0] for row in rows)
    assert "424242" in dumped  # the BIN is there, so the check reads real rows
    assert VISA_OK not in dumped


async def _post(api: httpx.AsyncClient, body: object, key: str | None = "k") -> httpx.Response:
    headers = {"Idempotency-Key": f"{key}-{uuid.uuid4().hex}"} if key else {}
    return await api.post("/v1/deposits", json=body, headers=headers)


async def test_bad_deposit_requests_are_precise_4xx(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player_id = await new_player(api)
    good = card_deposit(player_id)
    bad_card = {
        **good,
        "details": {"card": {**good["details"]["card"], "number": "4242424242424241"}},
    }
    expired = {**good, "details": {"card": {**good["details"]["card"], "exp_year": 2020}}}
    cases = [
        (await _post(api, good, key=None), 400, "idempotency_key_required"),
        (await _post(api, {**good, "amount": 5000.5}), 422, "validation_error"),
        (await _post(api, {**good, "amount": "5000"}), 422, "validation_error"),
        (await _post(api, {**good, "amount": -1}), 422, "validation_error"),
        (await _post(api, {**good, "currency": "USD"}), 422, "unsupported_currency"),
        (await _post(api, {**good, "method": "cash"}), 422, "validation_error"),
        (await _post(api, bad_card), 422, "invalid_card_number"),
        (await _post(api, expired), 422, "card_expired"),
        (await _post(api, {**good, "details": {}}), 422, "invalid_card_details"),
        (await _post(api, {**good, "player_id": "pl_missing"}), 404, "player_not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
        assert "4242424242424241" not in response.text
    async with sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM deposits WHERE player_id = :p"), {"p": player_id}
        )
    assert count == 0


async def test_deposit_list_filters_and_pages(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    player_id = await new_player(api)
    for _ in range(3):
        await deposit_and_wait(api, temporal_client, card_deposit(player_id))
    first = (await api.get("/v1/deposits", params={"player_id": player_id, "limit": 2})).json()
    assert len(first["data"]) == 2
    assert first["next_cursor"]
    rest = (
        await api.get(
            "/v1/deposits",
            params={"player_id": player_id, "limit": 2, "cursor": first["next_cursor"]},
        )
    ).json()
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None
    ids = {d["id"] for d in first["data"] + rest["data"]}
    assert len(ids) == 3
    missing = await api.get("/v1/deposits/dep_nope")
    assert (missing.status_code, missing.json()["code"]) == (404, "deposit_not_found")
