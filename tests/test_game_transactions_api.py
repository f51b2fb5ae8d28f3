"""Game transactions and the wallet statement over HTTP, black-box through the ASGI app."""

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import ledger as ledger_store
from domain.ledger import deposit_credit
from tests.conftest import new_player
from tests.ledger_helpers import assert_invariants, fresh

PROBLEM = "application/problem+json"


async def _funded_player(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], amount: int
) -> str:
    player = await new_player(api)
    await ledger_store.post(
        sessions,
        deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider="halyk",
            amount_minor=amount,
            currency="KZT",
        ),
    )
    return player


async def _game(
    api: httpx.AsyncClient, player: str, type_: str, amount: int, round_id: str, **headers: str
) -> httpx.Response:
    return await api.post(
        f"/v1/players/{player}/game-transactions",
        json={"type": type_, "amount": amount, "round_id": round_id},
        headers=headers,
    )


async def test_bet_and_win_move_the_wallet_and_show_ledger_ids(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 10_000)
    bet = await _game(api, player, "bet", 3_000, "round-1")
    assert bet.status_code == 201, bet.text
    body = bet.json()
    assert body["object"] == "game_transaction"
    assert body["transaction"]["key"] == f"game:{player}:round-1:bet"
    assert body["transaction"]["kind"] == "game_bet"
    assert isinstance(body["transaction"]["id"], int)
    assert body["balance"] == {"currency": "KZT", "available": 7_000, "held": 0}

    win = await _game(api, player, "win", 5_500, "round-1")
    assert win.status_code == 201, win.text
    assert win.json()["balance"]["available"] == 12_500
    shown = await api.get(f"/v1/players/{player}")
    assert shown.json()["balance"] == {"currency": "KZT", "available": 12_500, "held": 0}
    await assert_invariants(sessions)


async def test_same_round_and_type_is_idempotent_and_other_amount_conflicts(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 10_000)
    first = await _game(api, player, "bet", 1_000, "r-7")
    again = await _game(api, player, "bet", 1_000, "r-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["transaction"] == first.json()["transaction"]
    assert again.json()["balance"]["available"] == 9_000  # debited once

    other = await _game(api, player, "bet", 2_000, "r-7")
    assert other.status_code == 409
    assert other.headers["content-type"] == PROBLEM
    assert other.json()["code"] == "game_transaction_conflict"

    # Another player in the same round is a different posting, not a conflict.
    second = await _funded_player(api, sessions, 5_000)
    theirs = await _game(api, second, "bet", 2_000, "r-7")
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["transaction"]["id"] != first.json()["transaction"]["id"]


async def test_idempotency_key_replays_and_refuses_another_body(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 10_000)
    key = uuid.uuid4().hex
    results = await asyncio.gather(
        *(_game(api, player, "bet", 700, "r-idem", **{"Idempotency-Key": key}) for _ in range(5))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["transaction"]["id"] for r in results}) == 1
    reused = await _game(api, player, "bet", 800, "r-other", **{"Idempotency-Key": key})
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"
    shown = await api.get(f"/v1/players/{player}")
    assert shown.json()["balance"]["available"] == 9_300


async def test_bet_above_balance_is_insufficient_funds_and_changes_nothing(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 1_000)
    refused = await _game(api, player, "bet", 1_001, "r-big")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "insufficient_funds"
    shown = await api.get(f"/v1/players/{player}")
    assert shown.json()["balance"]["available"] == 1_000
    # Refused, not recorded: the same round may be bet again within the balance.
    assert (await _game(api, player, "bet", 1_000, "r-big")).status_code == 201


async def test_refund_needs_a_bet_and_never_exceeds_it(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 5_000)
    orphan = await _game(api, player, "refund", 100, "r-none")
    assert (orphan.status_code, orphan.json()["code"]) == (422, "no_bet_to_refund")
    assert (await _game(api, player, "bet", 2_000, "r-ref")).status_code == 201
    too_much = await _game(api, player, "refund", 2_001, "r-ref")
    assert (too_much.status_code, too_much.json()["code"]) == (422, "refund_exceeds_bet")
    refund = await _game(api, player, "refund", 2_000, "r-ref")
    assert refund.status_code == 201, refund.text
    assert refund.json()["balance"]["available"] == 5_000


async def test_unknown_player_bad_input_and_currency(api: httpx.AsyncClient) -> None:
    missing = await _game(api, "pl_nobody", "win", 100, "r-1")
    assert (missing.status_code, missing.json()["code"]) == (404, "player_not_found")
    player = await new_player(api)
    bad_bodies: list[dict[str, Any]] = [
        {"type": "jackpot", "amount": 100, "round_id": "r"},
        {"type": "bet", "amount": 0, "round_id": "r"},
        {"type": "bet", "amount": 10.5, "round_id": "r"},
        {"type": "bet", "amount": 100},
        {"type": "bet", "amount": 100, "round_id": "has space"},
        {"type": "bet", "amount": 100, "round_id": "r", "extra": 1},
    ]
    for body in bad_bodies:
        response = await api.post(f"/v1/players/{player}/game-transactions", json=body)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
    usd = await api.post(
        f"/v1/players/{player}/game-transactions",
        json={"type": "win", "amount": 100, "round_id": "r", "currency": "USD"},
    )
    assert (usd.status_code, usd.json()["code"]) == (422, "unsupported_currency")


async def test_statement_has_running_balance_and_pages(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded_player(api, sessions, 10_000)
    for index, (type_, amount) in enumerate(
        [("bet", 1_000), ("win", 2_500), ("bet", 4_000), ("bet", 500)]
    ):
        assert (await _game(api, player, type_, amount, f"s-{index}")).status_code == 201
    first = await api.get(f"/v1/players/{player}/statement", params={"limit": 3})
    assert first.status_code == 200, first.text
    page = first.json()
    assert [line["balance_after"] for line in page["data"]] == [10_000, 9_000, 11_500]
    assert [line["side"] for line in page["data"]] == ["credit", "debit", "credit"]
    assert page["data"][0]["transaction"]["kind"] == "deposit_credit"
    assert page["next_cursor"]
    rest = await api.get(
        f"/v1/players/{player}/statement", params={"limit": 3, "cursor": page["next_cursor"]}
    )
    assert [line["balance_after"] for line in rest.json()["data"]] == [7_500, 7_000]
    assert rest.json()["next_cursor"] is None

    bad = await api.get(f"/v1/players/{player}/statement", params={"cursor": "%%%"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
    missing = await api.get("/v1/players/pl_nobody/statement")
    assert missing.status_code == 404


async def test_openapi_documents_the_ledger_endpoints(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    post = schema["paths"]["/v1/players/{player_id}/game-transactions"]["post"]
    assert post["summary"]
    assert "201" in post["responses"]
    assert "422" in post["responses"]
    statement = schema["paths"]["/v1/players/{player_id}/statement"]["get"]
    assert statement["summary"]
    assert "GameTransactionOut" in schema["components"]["schemas"]
    assert "StatementOut" in schema["components"]["schemas"]
