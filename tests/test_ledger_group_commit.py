"""Issue 21: the deposit and withdrawal activities post through group commit
(`db.ledger.LedgerBatcher`, shared by the process), and each posting is still made exactly once
when the activity is retried; so does the hold of a withdrawal the API creates."""

import asyncio

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.deposits import DepositActivities
from activities.models import CreditDepositInput
from activities.withdrawal_models import SettleHoldInput
from activities.withdrawals import WithdrawalActivities
from db import ledger as ledger_store
from db.engine import make_engine, make_sessionmaker
from db.roles import DatabaseRoles
from domain.ledger import LedgerPolicy, deposit_credit, player_wallet, withdrawal_hold
from tests.ledger_helpers import assert_invariants, fresh

PROVIDER = "halyk"
POLICY = LedgerPolicy(house_shards=8, provider_fee_bps=((PROVIDER, 150),))  # 1.5%


async def _available(sessions: async_sessionmaker[AsyncSession], player: str) -> int:
    async with sessions() as session:
        value = await session.scalar(
            text(
                "SELECT posted_credits - posted_debits - pending_debits FROM ledger_accounts "
                "WHERE code = :code"
            ),
            {"code": player_wallet(player, "KZT").code},
        )
    return int(value or 0)


async def _kinds(sessions: async_sessionmaker[AsyncSession], payment_id: str) -> list[str]:
    async with sessions() as session:
        rows = await session.scalars(
            text("SELECT kind FROM ledger_transactions WHERE payment_id = :id ORDER BY id"),
            {"id": payment_id},
        )
        return list(rows)


async def test_deposit_credits_go_through_group_commit_exactly_once_on_retry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    deposits = DepositActivities(sessions=sessions, card_providers={}, ledger_policy=POLICY)
    batcher = ledger_store.LedgerBatcher.shared(sessions)
    env = ActivityEnvironment()
    player = fresh("pl")
    inputs = [
        CreditDepositInput(
            deposit_id=fresh("dep"),
            player_id=player,
            provider=PROVIDER,
            amount_minor=10_000,
            currency="KZT",
        )
        for _ in range(12)
    ]
    batches, postings = batcher.batches, batcher.postings

    first = await asyncio.gather(*(env.run(deposits.credit_deposit, inp) for inp in inputs))
    assert all(r.created for r in first)
    # 12 credits and 12 fees, in a few shared statements rather than 12 transactions.
    assert batcher.postings - postings == 24
    assert 1 <= batcher.batches - batches < 12
    assert await _available(sessions, player) == 120_000

    # Temporal retries the activity (its result was lost): nothing is posted again.
    retried = await asyncio.gather(*(env.run(deposits.credit_deposit, inp) for inp in inputs))
    assert [(r.transaction_id, r.key, r.created) for r in retried] == [
        (r.transaction_id, r.key, False) for r in first
    ]
    assert batcher.postings - postings == 48  # the replays went through the batcher too
    assert await _available(sessions, player) == 120_000
    assert sorted(await _kinds(sessions, inputs[0].deposit_id)) == ["deposit_credit", "deposit_fee"]
    await assert_invariants(sessions)


async def test_withdrawal_settlements_go_through_group_commit_exactly_once_on_retry(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    withdrawals = WithdrawalActivities(sessions=sessions, payout_providers={})
    deposits = DepositActivities(sessions=sessions, card_providers={}, ledger_policy=POLICY)
    batcher = ledger_store.LedgerBatcher.shared(sessions)
    assert deposits._batcher is withdrawals._batcher is batcher  # one per process and engine
    env = ActivityEnvironment()
    player = fresh("pl")
    await ledger_store.post(
        sessions,
        deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider=PROVIDER,
            amount_minor=50_000,
            currency="KZT",
        ),
    )
    paid, released = fresh("wd"), fresh("wd")
    for withdrawal_id in (paid, released):
        await ledger_store.post(
            sessions,
            withdrawal_hold(
                withdrawal_id=withdrawal_id,
                player_id=player,
                provider=PROVIDER,
                amount_minor=10_000,
                currency="KZT",
            ),
        )
    assert await _available(sessions, player) == 30_000
    settle = [
        SettleHoldInput(withdrawal_id=paid, action="post"),
        SettleHoldInput(withdrawal_id=released, action="void"),
    ]
    postings = batcher.postings

    first = await asyncio.gather(*(env.run(withdrawals.settle_hold, s) for s in settle))
    again = await asyncio.gather(*(env.run(withdrawals.settle_hold, s) for s in settle))
    assert [r.transaction_id for r in again] == [r.transaction_id for r in first]
    assert batcher.postings - postings == 4
    assert await _available(sessions, player) == 40_000  # one paid out, one given back
    assert await _kinds(sessions, paid) == ["withdrawal_hold", "withdrawal_paid"]
    assert await _kinds(sessions, released) == ["withdrawal_hold", "withdrawal_released"]
    await assert_invariants(sessions)


async def _wallet_holds(sessions: async_sessionmaker[AsyncSession], player: str) -> list[str]:
    """The withdrawals (payment ids) whose holds moved the player's wallet, oldest first."""
    async with sessions() as session:
        rows = await session.scalars(
            text(
                "SELECT t.payment_id FROM ledger_transactions t "
                "JOIN ledger_entries e ON e.transaction_id = t.id "
                "JOIN ledger_accounts a ON a.id = e.account_id "
                "WHERE a.code = :code AND t.kind = 'withdrawal_hold' ORDER BY t.id"
            ),
            {"code": player_wallet(player, "KZT").code},
        )
        return list(rows)


async def test_the_application_role_claims_a_key_only_through_the_ledger_function(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """`ledger_claim_key` (migration 0210) runs as the owner, like the posting functions: the
    application role, which may not write the ledger's tables, can claim a key with it (and
    claim nothing where a posting holds the key); group commit's statement works as it too."""
    roles = DatabaseRoles.defaults()
    async with sessions() as session, session.begin():
        await session.execute(text(f'ALTER ROLE "{roles.app}" LOGIN'))
    app_url = make_url(database_url).set(username=roles.app, password=None)
    engine = make_engine(app_url.render_as_string(False))
    app_sessions = make_sessionmaker(engine, autocommit=True)
    player, key = fresh("pl"), fresh("wallet:default:tx")
    try:
        async with app_sessions() as session:
            claimed = await ledger_store.claim_key(
                session, key=key, kind="game_bet_cancelled", lock_code=f"wallet:{player}"
            )
            again = await ledger_store.claim_key(
                session, key=key, kind="game_bet_cancelled", lock_code=f"wallet:{player}"
            )
            assert (claimed, again) == (None, None)
            assert await ledger_store.posting_kind(session, key=key) == "game_bet_cancelled"
            with pytest.raises(DBAPIError):
                await session.execute(
                    text(
                        "INSERT INTO ledger_transactions (key, kind, content_hash) "
                        "VALUES ('x', 'x', 'x')"
                    )
                )
        spec = deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider=PROVIDER,
            amount_minor=1,
            currency="KZT",
        )
        claimed_other = fresh("k")
        async with app_sessions() as session:
            posted = await ledger_store.post(app_sessions, spec)
            assert (
                await ledger_store.claim_key(
                    session, key=spec.key, kind="game_bet_cancelled", lock_code=claimed_other
                )
                == "deposit_credit"
            )  # the key holds a posting: nothing claimed
        assert posted.created
        # Group commit's statement (`ledger_post_batch_balances`, 0210) as the application.
        batcher = ledger_store.LedgerBatcher(app_sessions, parallel=1)
        more, balance = await batcher.post_and_balance(
            deposit_credit(
                deposit_id=fresh("dep"),
                player_id=player,
                provider=PROVIDER,
                amount_minor=2,
                currency="KZT",
            ),
            account_code=player_wallet(player, "KZT").code,
        )
        assert (more.created, balance) == (True, 3)
    finally:
        await engine.dispose()
