"""Two-phase transfers, reversals, settlement and the invariant checker on real PostgreSQL."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import ledger as ledger_store
from db import players as player_store
from db.ledger_check import run_checks
from domain.ledger import (
    PendingResolution,
    deposit_credit,
    game_transaction,
    settlement,
    withdrawal_hold,
    withdrawal_post,
    withdrawal_void,
)
from tests.ledger_helpers import assert_invariants, fresh, run_checker


async def _fund(sessions: async_sessionmaker[AsyncSession], player: str, amount: int) -> None:
    await ledger_store.post(
        sessions,
        deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider="halyk",
            amount_minor=amount,
            currency="KZT",
            shards=4,
        ),
    )


async def _balance(sessions: async_sessionmaker[AsyncSession], player: str) -> tuple[int, int]:
    async with sessions() as session:
        balance = await player_store.get_balance(session, player_id=player, currency="KZT")
    return balance.available_minor, balance.held_minor


async def test_hold_then_post_moves_money_once(sessions: async_sessionmaker[AsyncSession]) -> None:
    player, wd = fresh("pl"), fresh("wd")
    await _fund(sessions, player, 10_000)
    hold = withdrawal_hold(
        withdrawal_id=wd, player_id=player, provider="halyk", amount_minor=7_000, currency="KZT"
    )
    await ledger_store.post(sessions, hold)
    assert await _balance(sessions, player) == (3_000, 7_000)

    first = await ledger_store.resolve(sessions, withdrawal_post(withdrawal_id=wd))
    again = await ledger_store.resolve(sessions, withdrawal_post(withdrawal_id=wd))
    assert first.created
    assert (again.created, again.id) == (False, first.id)
    assert await _balance(sessions, player) == (3_000, 0)
    with pytest.raises(ledger_store.PendingAlreadyResolved):
        await ledger_store.resolve(sessions, withdrawal_void(withdrawal_id=wd))
    await assert_invariants(sessions)


async def test_void_releases_and_partial_post_releases_the_rest(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = fresh("pl")
    await _fund(sessions, player, 10_000)
    voided, partial = fresh("wd"), fresh("wd")
    for wd in (voided, partial):
        await ledger_store.post(
            sessions,
            withdrawal_hold(
                withdrawal_id=wd,
                player_id=player,
                provider="halyk",
                amount_minor=4_000,
                currency="KZT",
            ),
        )
    assert await _balance(sessions, player) == (2_000, 8_000)
    await ledger_store.resolve(sessions, withdrawal_void(withdrawal_id=voided))
    await ledger_store.resolve(
        sessions,
        PendingResolution(
            key=f"wd:{partial}:post",
            kind="withdrawal_paid",
            payment_id=partial,
            pending_key=f"wd:{partial}:hold",
            action="post",
            amount_minor=2_500,
        ),
    )
    assert await _balance(sessions, player) == (7_500, 0)
    hold = fresh("wd")
    await ledger_store.post(
        sessions,
        withdrawal_hold(
            withdrawal_id=hold,
            player_id=player,
            provider="halyk",
            amount_minor=1_000,
            currency="KZT",
        ),
    )
    with pytest.raises(ledger_store.InvalidPostAmount):
        await ledger_store.resolve(
            sessions,
            PendingResolution(
                key=f"wd:{hold}:post",
                kind="withdrawal_paid",
                payment_id=hold,
                pending_key=f"wd:{hold}:hold",
                action="post",
                amount_minor=1_001,
            ),
        )
    await assert_invariants(sessions)


async def test_holds_cannot_exceed_available(sessions: async_sessionmaker[AsyncSession]) -> None:
    player = fresh("pl")
    await _fund(sessions, player, 5_000)
    await ledger_store.post(
        sessions,
        withdrawal_hold(
            withdrawal_id=fresh("wd"),
            player_id=player,
            provider="halyk",
            amount_minor=4_000,
            currency="KZT",
        ),
    )
    with pytest.raises(ledger_store.InsufficientFunds):
        await ledger_store.post(
            sessions,
            game_transaction(
                player_id=player,
                round_id=fresh("r"),
                type="bet",
                amount_minor=1_001,
                currency="KZT",
            ),
        )
    assert await _balance(sessions, player) == (1_000, 4_000)


async def test_resolving_an_unknown_pending_is_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    with pytest.raises(ledger_store.PendingNotFound):
        await ledger_store.resolve(sessions, withdrawal_void(withdrawal_id=fresh("wd")))


async def test_reversal_corrects_without_editing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    player = fresh("pl")
    bet = game_transaction(
        player_id=player, round_id=fresh("r"), type="win", amount_minor=900, currency="KZT"
    )
    await ledger_store.post(sessions, bet)
    async with sessions.begin() as session:
        reversed_ = await ledger_store.reverse(session, key=bet.key)
    async with sessions.begin() as session:
        again = await ledger_store.reverse(session, key=bet.key)
    assert reversed_.created
    assert not again.created
    assert await _balance(sessions, player) == (0, 0)
    async with sessions() as session:
        kinds = (
            await session.execute(
                text("SELECT kind FROM ledger_transactions WHERE key LIKE :k ORDER BY id"),
                {"k": f"{bet.key}%"},
            )
        ).scalars()
        assert list(kinds) == ["game_win", "game_win_reversal"]
    await assert_invariants(sessions)


async def test_settlement_empties_clearing_and_checker_sees_it(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    provider = fresh("acq")
    for _ in range(5):
        await ledger_store.post(
            sessions,
            deposit_credit(
                deposit_id=fresh("dep"),
                player_id=fresh("pl"),
                provider=provider,
                amount_minor=1_000,
                currency="KZT",
                shards=4,
            ),
        )
    async with sessions() as session:
        rows = await session.execute(
            text(
                "SELECT code, posted_debits - posted_credits FROM ledger_accounts "
                "WHERE type = 'provider_clearing' AND owner_id = :o"
            ),
            {"o": f"provider:{provider}"},
        )
        shard_balances = {int(code.rsplit(":", 1)[1]): int(net) for code, net in rows.all()}
    assert sum(shard_balances.values()) == 5_000
    spec = settlement(
        provider=provider, batch_id="b1", currency="KZT", shard_balances=shard_balances
    )
    assert spec is not None
    await ledger_store.post(sessions, spec)

    # The command-line checker agrees (run as a separate process, as an operator would).
    checked = await run_checker(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "all invariants hold" in checked.stdout
    assert "cached counters equal the sum of entries" in checked.stdout


async def test_checker_reports_a_breach(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Tamper with a cached counter (counters are not immutable) and the checker must fail."""
    player = fresh("pl")
    await _fund(sessions, player, 1_000)
    code = f"player:{player}:wallet:KZT"
    async with sessions.begin() as session:
        await session.execute(
            text("UPDATE ledger_accounts SET posted_credits = posted_credits + 1 WHERE code = :c"),
            {"c": code},
        )
    try:
        checked = await run_checker(database_url)
        assert checked.returncode == 1
        assert "BREACH" in checked.stdout
        assert code in checked.stdout
    finally:
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "UPDATE ledger_accounts SET posted_credits = posted_credits - 1 WHERE code = :c"
                ),
                {"c": code},
            )


async def test_checker_reports_drifted_daily_wallet_totals(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """ledger_post keeps the fraud rules' per-day wallet totals; a total that no longer matches
    the entries is a breach like a wrong counter."""
    player = fresh("pl")
    await _fund(sessions, player, 1_000)
    async with sessions() as session:
        account_id = (
            await session.execute(
                text("SELECT id FROM ledger_accounts WHERE code = :c"),
                {"c": f"player:{player}:wallet:KZT"},
            )
        ).scalar_one()
        totals = (
            await session.execute(
                text("SELECT deposits_minor FROM wallet_daily_totals WHERE account_id = :a"),
                {"a": account_id},
            )
        ).scalar_one()
    assert totals == 1_000
    drift = (
        "UPDATE wallet_daily_totals SET deposits_minor = deposits_minor + :d WHERE account_id = :a"
    )
    async with sessions.begin() as session:
        await session.execute(text(drift), {"d": 1, "a": account_id})
    try:
        async with sessions() as session:
            results = {r.name: r for r in await run_checks(session)}
        drifted = results["per-day wallet totals equal the entries"]
        assert not drifted.ok
        assert any(offender.startswith(f"{account_id} ") for offender in drifted.offenders)
    finally:
        async with sessions.begin() as session:
            await session.execute(text(drift), {"d": -1, "a": account_id})
    await assert_invariants(sessions)
