"""The game platform's wallet API (issue 21), black-box through the ASGI app."""

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import api_keys
from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from domain.ledger import TransactionSpec, deposit_credit, player_wallet
from domain.roles import Role
from tests.conftest import _client, new_player
from tests.ledger_helpers import assert_invariants, fresh

PROBLEM = "application/problem+json"


async def _funded(
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


async def _op(api: httpx.AsyncClient, kind: str, **body: Any) -> httpx.Response:
    return await api.post(f"/v1/wallet/{kind}", json=body)


async def _balance(api: httpx.AsyncClient, player: str) -> int:
    response = await api.get(f"/v1/wallet/players/{player}/balance")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def test_bet_and_win_answer_the_new_balance_and_replays_post_nothing(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 10_000)
    bet_id, win_id = fresh("tx"), fresh("tx")
    bet = await _op(
        api, "bet", player_id=player, transaction_id=bet_id, amount=3_000, round_id="r1"
    )
    assert bet.status_code == 200, bet.text
    body = bet.json()
    assert (body["status"], body["replayed"], body["balance"]) == ("ok", False, 7_000)
    assert body["round_id"] == "r1"
    assert isinstance(body["ledger_transaction_id"], int)

    win = await _op(api, "win", player_id=player, transaction_id=win_id, amount=5_500)
    assert win.status_code == 200, win.text
    assert win.json()["balance"] == 12_500

    again = await _op(api, "bet", player_id=player, transaction_id=bet_id, amount=3_000)
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert again.json()["ledger_transaction_id"] == body["ledger_transaction_id"]
    assert again.json()["balance"] == 12_500  # nothing moved
    win_again = await _op(api, "win", player_id=player, transaction_id=win_id, amount=5_500)
    assert win_again.json()["replayed"] is True
    assert await _balance(api, player) == 12_500
    await assert_invariants(sessions)


async def test_a_transaction_id_reused_with_other_content_is_a_conflict(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 10_000)
    tx = fresh("tx")
    assert (await _op(api, "bet", player_id=player, transaction_id=tx, amount=100)).is_success
    for kind, amount in (("bet", 200), ("win", 100)):
        other = await _op(api, kind, player_id=player, transaction_id=tx, amount=amount)
        assert other.status_code == 409
        assert other.headers["content-type"] == PROBLEM
        assert other.json()["code"] == "transaction_conflict"
    assert await _balance(api, player) == 9_900


async def test_insufficient_funds_is_a_clear_refusal_that_moves_nothing(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 1_000)
    refused = await _op(api, "bet", player_id=player, transaction_id=fresh("tx"), amount=1_001)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["code"] == "insufficient_funds"
    assert await _balance(api, player) == 1_000


async def test_rollback_of_a_bet_of_an_unknown_bet_and_again(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 10_000)
    bet_id = fresh("tx")
    await _op(api, "bet", player_id=player, transaction_id=bet_id, amount=2_500)
    rollback = {"player_id": player, "transaction_id": fresh("rb"), "bet_transaction_id": bet_id}

    first = await _op(api, "rollback", **rollback)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "rolled_back"
    assert (first.json()["replayed"], first.json()["amount"]) == (False, 2_500)
    assert first.json()["balance"] == 10_000

    again = await _op(api, "rollback", **rollback)
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["replayed"]) == ("rolled_back", True)
    other_id = await _op(api, "rollback", **{**rollback, "transaction_id": fresh("rb")})
    assert (other_id.json()["status"], other_id.json()["replayed"]) == ("rolled_back", True)
    assert await _balance(api, player) == 10_000

    unknown = await _op(api, "rollback", **{**rollback, "bet_transaction_id": fresh("nobet")})
    assert unknown.status_code == 200
    assert unknown.json()["status"] == "bet_not_found"
    assert (unknown.json()["amount"], unknown.json()["balance"]) == (0, 10_000)

    someone_else = await _funded(api, sessions, 10_000)
    theirs = await _op(
        api, "rollback", **{**rollback, "player_id": someone_else, "transaction_id": fresh("rb")}
    )
    assert theirs.json()["status"] == "bet_not_found"  # not this player's bet

    win_id = fresh("tx")
    await _op(api, "win", player_id=player, transaction_id=win_id, amount=10)
    not_a_bet = await _op(api, "rollback", **{**rollback, "bet_transaction_id": win_id})
    assert not_a_bet.status_code == 422
    assert not_a_bet.json()["code"] == "not_a_bet"
    await assert_invariants(sessions)


async def test_unknown_players_and_currencies_are_refused(api: httpx.AsyncClient) -> None:
    missing = await _op(api, "win", player_id="pl_nobody", transaction_id=fresh("tx"), amount=1)
    assert missing.status_code == 404
    assert missing.json()["code"] == "player_not_found"
    player = await new_player(api)
    usd = await _op(
        api, "bet", player_id=player, transaction_id=fresh("tx"), amount=1, currency="USD"
    )
    assert usd.status_code == 422
    assert usd.json()["code"] == "unsupported_currency"
    # An id with ':' could spell another posting's ledger key (`…:reversal`): refused.
    colon = await _op(api, "win", player_id=player, transaction_id="abc:reversal", amount=1)
    assert colon.status_code == 422
    assert colon.json()["code"] == "validation_error"


async def test_only_merchant_keys_use_the_wallet(
    api: httpx.AsyncClient, operator_api: httpx.AsyncClient, anonymous_api: httpx.AsyncClient
) -> None:
    player = await new_player(api)
    body = {"player_id": player, "transaction_id": fresh("tx"), "amount": 1}
    assert (await operator_api.post("/v1/wallet/win", json=body)).status_code == 403
    assert (await anonymous_api.post("/v1/wallet/win", json=body)).status_code == 401


async def test_a_round_settles_many_wins_at_once_each_on_its_own(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    players = [await _funded(api, sessions, 1_000) for _ in range(5)]
    wins = [
        {"player_id": p, "transaction_id": fresh("w"), "amount": 100 * (i + 1)}
        for i, p in enumerate(players)
    ]
    round_id = fresh("round")
    settled = await api.post(f"/v1/wallet/rounds/{round_id}/wins", json={"wins": wins})
    assert settled.status_code == 200, settled.text
    body = settled.json()
    assert (body["round_id"], body["settled"], body["failed"]) == (round_id, 5, 0)
    assert [r["balance"] for r in body["results"]] == [1_100, 1_200, 1_300, 1_400, 1_500]

    conflicting = {**wins[0], "amount": 1}
    unknown = {"player_id": "pl_nobody", "transaction_id": fresh("w"), "amount": 1}
    replay = await api.post(
        f"/v1/wallet/rounds/{round_id}/wins", json={"wins": [*wins[1:], conflicting, unknown]}
    )
    assert replay.status_code == 200
    results = replay.json()["results"]
    assert all(r["status"] == "ok" and r["replayed"] for r in results[:4])
    assert results[4]["error"]["code"] == "transaction_conflict"
    assert results[5]["error"]["code"] == "player_not_found"
    assert [await _balance(api, p) for p in players] == [1_100, 1_200, 1_300, 1_400, 1_500]
    await assert_invariants(sessions)


async def test_concurrent_bets_on_one_player_never_overdraw(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 10_000)
    responses = await asyncio.gather(
        *(
            _op(api, "bet", player_id=player, transaction_id=fresh("tx"), amount=700)
            for _ in range(40)
        )
    )
    taken = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 422]
    assert (len(taken), len(refused)) == (14, 26)  # 14 x 700 = 9,800 of 10,000
    assert all(r.json()["code"] == "insufficient_funds" for r in refused)
    assert min(r.json()["balance"] for r in taken) == 200
    assert await _balance(api, player) == 200
    await assert_invariants(sessions)


async def test_a_burst_of_mixed_operations_keeps_the_ledger_whole(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    players = [await _funded(api, sessions, 50_000) for _ in range(4)]
    bets = [(p, fresh("tx")) for p in players for _ in range(10)]
    calls = [_op(api, "bet", player_id=p, transaction_id=t, amount=1_000) for p, t in bets]
    calls += [_op(api, "win", player_id=p, transaction_id=fresh("w"), amount=500) for p in players]
    calls += [
        _op(api, "rollback", player_id=p, transaction_id=fresh("rb"), bet_transaction_id=t)
        for p, t in bets[::10]
    ]
    responses = await asyncio.gather(*calls)
    # A rollback that came before its bet is remembered: that bet is refused (409).
    refused = [r for r in responses if r.status_code == 409]
    assert all(r.json()["code"] == "transaction_rolled_back" for r in refused)
    assert all(r.status_code == 200 for r in responses if r not in refused)
    assert len(refused) == sum(r.json()["status"] == "bet_not_found" for r in responses[-4:])
    balances = [await _balance(api, p) for p in players]
    # Either way, each rolled-back bet took nothing in the end.
    assert balances == [50_000 - 10_000 + 500 + 1_000 for _ in players]
    await assert_invariants(sessions)


async def test_a_rollback_before_its_bet_is_remembered_and_the_bet_refused(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    player = await _funded(api, sessions, 10_000)
    bet_id = fresh("tx")
    rollback = {"player_id": player, "transaction_id": fresh("rb"), "bet_transaction_id": bet_id}
    early = await _op(api, "rollback", **rollback)
    assert early.status_code == 200, early.text
    assert (early.json()["status"], early.json()["replayed"]) == ("bet_not_found", False)
    assert (early.json()["amount"], early.json()["balance"]) == (0, 10_000)

    for _ in range(2):  # the bet, and the game platform's retry of it
        late = await _op(api, "bet", player_id=player, transaction_id=bet_id, amount=2_500)
        assert late.status_code == 409, late.text
        assert late.headers["content-type"] == PROBLEM
        assert late.json()["code"] == "transaction_rolled_back"
        assert await _balance(api, player) == 10_000  # never debited

    again = await _op(api, "rollback", **rollback)
    assert (again.json()["status"], again.json()["replayed"]) == ("bet_not_found", True)
    # Not a conflict for other ids: the next bet is taken as usual.
    taken = await _op(api, "bet", player_id=player, transaction_id=fresh("tx"), amount=1_000)
    assert (taken.status_code, taken.json()["balance"]) == (200, 9_000)
    async with sessions() as session:
        marker = (
            await session.execute(
                text(
                    "SELECT t.kind, count(e.id) AS entries FROM ledger_transactions t "
                    "LEFT JOIN ledger_entries e ON e.transaction_id = t.id "
                    "WHERE t.key = :key GROUP BY t.kind"
                ),
                {"key": f"wallet:default:{bet_id}"},
            )
        ).one()
    assert (marker.kind, marker.entries) == ("game_bet_cancelled", 0)  # moves no money
    await assert_invariants(sessions)


async def test_a_rollback_racing_its_bet_never_leaves_the_wallet_debited(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Bet and rollback sent together: whichever the wallet sees first, the bet is either taken
    and rolled back, or refused; the balance ends where it began."""
    player = await _funded(api, sessions, 100_000)
    pairs = [fresh("tx") for _ in range(30)]
    calls = []
    for n, bet_id in enumerate(pairs):
        bet = _op(api, "bet", player_id=player, transaction_id=bet_id, amount=1_000)
        rollback = _op(
            api,
            "rollback",
            player_id=player,
            transaction_id=fresh("rb"),
            bet_transaction_id=bet_id,
        )
        calls += [bet, rollback] if n % 2 else [rollback, bet]
    responses = await asyncio.gather(*calls)
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == "transaction_rolled_back"
        else:
            assert response.status_code == 200, response.text
    bets_taken = sum(1 for r in responses if r.status_code == 200 and r.json()["type"] == "bet")
    rolled = sum(
        1 for r in responses if r.status_code == 200 and r.json()["status"] == "rolled_back"
    )
    assert bets_taken == rolled
    assert await _balance(api, player) == 100_000
    await assert_invariants(sessions)


async def test_a_revoked_key_stops_working_at_once_despite_the_cache(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        issued = await api_keys.issue_key(session, name="game platform", role=Role.MERCHANT)
    state = app.state.payments
    for _ in range(100):  # the listener connects as the app starts
        if state.hot.listening:
            break
        await asyncio.sleep(0.05)
    assert state.hot.listening
    async with _client(app, issued.secret) as client:
        ok = await client.get("/v1/wallet/players/pl_nobody/balance")
        assert ok.status_code == 404  # through auth
        assert state.hot.keys.get(issued.holder.key_id) is not None  # cached
        async with sessions.begin() as session:
            assert await api_keys.revoke_key(session, key_id=issued.holder.key_id)
        statuses = []
        for _ in range(20):
            statuses.append((await client.get("/v1/wallet/players/pl_nobody/balance")).status_code)
            if statuses[-1] == 401:
                break
            await asyncio.sleep(0.01)
        assert statuses[-1] == 401, statuses
        assert len(statuses) <= 3, statuses  # within milliseconds of the commit
        assert state.hot.keys.get(issued.holder.key_id) is None


async def test_openapi_documents_the_wallet_with_problem_json(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    for path in ("/v1/wallet/bet", "/v1/wallet/win", "/v1/wallet/rollback"):
        post = schema["paths"][path]["post"]
        assert post["summary"]
        assert PROBLEM in post["responses"]["422"]["content"]
    assert "/v1/wallet/rounds/{round_id}/wins" in schema["paths"]
    assert "/v1/wallet/players/{player_id}/balance" in schema["paths"]
    assert "WalletResult" in schema["components"]["schemas"]
    assert (
        "transaction_rolled_back"
        in schema["paths"]["/v1/wallet/bet"]["post"]["responses"]["409"]["description"]
    )
    assert (
        "transaction_rolled_back" in schema["paths"]["/v1/wallet/rollback"]["post"]["description"]
    )


async def test_the_batcher_posts_again_on_a_connection_postgresql_closed(database_url: str) -> None:
    """The wallet's batcher pool has no pre-ping: a connection PostgreSQL closed is met by the
    posting itself, which is tried again on a new one (postings are idempotent)."""
    engine = make_engine(database_url, pool_size=1, pre_ping=False)
    batcher = ledger_store.LedgerBatcher(make_sessionmaker(engine), parallel=1)
    player = fresh("pl")

    def credit(n: int) -> TransactionSpec:
        return deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider="halyk",
            amount_minor=n,
            currency="KZT",
        )

    try:
        await batcher.post(credit(100))
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        other = make_engine(database_url, pool_size=1)
        try:
            async with other.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await other.dispose()
        posted, balance = await batcher.post_and_balance(
            credit(50), account_code=player_wallet(player, "KZT").code
        )
        assert posted.created
        assert balance == 150
    finally:
        await engine.dispose()
