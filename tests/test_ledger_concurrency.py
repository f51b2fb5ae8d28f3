"""Many postings racing on one wallet and one house account; crash-after-commit replays."""

import asyncio
import random

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import ledger as ledger_store
from db import players as player_store
from db.models import LedgerAccount, LedgerTransaction
from domain.ledger import (
    TransactionSpec,
    deposit_credit,
    game_revenue,
    game_transaction,
    provider_clearing,
    withdrawal_hold,
    withdrawal_post,
    withdrawal_void,
)
from tests.ledger_helpers import assert_invariants, fresh, run_checker

Sessions = async_sessionmaker[AsyncSession]


async def _balance(sessions: Sessions, player: str) -> tuple[int, int]:
    async with sessions() as session:
        balance = await player_store.get_balance(session, player_id=player, currency="KZT")
    return balance.available_minor, balance.held_minor


async def _net(sessions: Sessions, code: str) -> tuple[int, int]:
    """(posted credits - posted debits, pending credits - pending debits) of one account."""
    async with sessions() as session:
        account = await session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if account is None:
        return 0, 0
    return (
        account.posted_credits - account.posted_debits,
        account.pending_credits - account.pending_debits,
    )


async def _count(sessions: Sessions, key: str) -> int:
    async with sessions() as session:
        found = await session.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.key == key)
        )
    return int(found or 0)


async def test_racing_bets_and_holds_never_overdraw_one_wallet(
    sessions: Sessions, database_url: str
) -> None:
    """64 tasks over the pool: bets and withdrawal holds against 10,000 on one wallet, all on one
    unsharded game revenue account and one clearing shard."""
    player, funding = fresh("pl"), 10_000
    house = game_revenue("KZT", 0).code
    clearing = provider_clearing("halyk", "KZT", 0).code
    house_before, clearing_before = await _net(sessions, house), await _net(sessions, clearing)
    await ledger_store.post(
        sessions,
        deposit_credit(
            deposit_id=fresh("dep"),
            player_id=player,
            provider="halyk",
            amount_minor=funding,
            currency="KZT",
        ),
    )
    rng = random.Random(7)
    specs: list[TransactionSpec] = []
    for _ in range(64):
        amount = rng.choice([150, 300, 450, 700])
        if rng.random() < 0.7:
            specs.append(
                game_transaction(
                    player_id=player,
                    round_id=fresh("round"),
                    type="bet",
                    amount_minor=amount,
                    currency="KZT",
                )
            )
        else:
            specs.append(
                withdrawal_hold(
                    withdrawal_id=fresh("wd"),
                    player_id=player,
                    provider="halyk",
                    amount_minor=amount,
                    currency="KZT",
                )
            )

    async def attempt(spec: TransactionSpec) -> bool:
        try:
            await ledger_store.post(sessions, spec)
        except ledger_store.InsufficientFunds:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt(spec) for spec in specs))
    won = [spec for spec, ok in zip(specs, outcomes, strict=True) if ok]
    refused = [spec for spec, ok in zip(specs, outcomes, strict=True) if not ok]
    bets = sum(s.entries[0].amount_minor for s in won if s.phase == "posted")
    holds = sum(s.entries[0].amount_minor for s in won if s.phase == "pending")

    assert refused, "the test must race past the balance"
    assert bets + holds <= funding
    assert await _balance(sessions, player) == (funding - bets - holds, holds)
    # Nothing was refused that would have fitted: the balance only went down.
    assert funding - bets - holds < min(s.entries[0].amount_minor for s in refused)
    house_after, clearing_after = await _net(sessions, house), await _net(sessions, clearing)
    assert house_after[0] - house_before[0] == bets
    assert clearing_after[0] - clearing_before[0] == -funding  # Dr clearing for the deposit
    assert clearing_after[1] - clearing_before[1] == holds  # pending Cr clearing for the holds

    # Now pay half the holds and release the rest, racing, each twice.
    held = [s for s in won if s.phase == "pending"]
    paid_ids = {s.payment_id for s in held[::2]}
    resolutions = [
        withdrawal_post(withdrawal_id=str(s.payment_id))
        if s.payment_id in paid_ids
        else withdrawal_void(withdrawal_id=str(s.payment_id))
        for s in held
    ] * 2
    results = await asyncio.gather(*(ledger_store.resolve(sessions, r) for r in resolutions))
    assert sum(r.created for r in results) == len(held)
    paid = sum(s.entries[0].amount_minor for s in held if s.payment_id in paid_ids)
    assert await _balance(sessions, player) == (funding - bets - paid, 0)

    await assert_invariants(sessions)
    checked = await run_checker(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_many_wallets_share_one_house_account_exactly(sessions: Sessions) -> None:
    """80 tasks, 20 wallets, every bet and win on the same game revenue account."""
    players = [fresh("pl") for _ in range(20)]
    house = game_revenue("KZT", 0).code
    before = await _net(sessions, house)
    await asyncio.gather(
        *(
            ledger_store.post(
                sessions,
                deposit_credit(
                    deposit_id=fresh("dep"),
                    player_id=p,
                    provider="halyk",
                    amount_minor=5_000,
                    currency="KZT",
                ),
            )
            for p in players
        )
    )
    rng = random.Random(11)
    plan = [
        game_transaction(
            player_id=rng.choice(players),
            round_id=fresh("round"),
            type=rng.choice(["bet", "bet", "win"]),
            amount_minor=rng.randint(1, 400),
            currency="KZT",
        )
        for _ in range(400)
    ]
    queue = iter(plan)
    done: list[TransactionSpec] = []

    async def worker() -> None:
        for spec in queue:
            try:
                await ledger_store.post(sessions, spec)
            except ledger_store.InsufficientFunds:
                continue
            done.append(spec)

    await asyncio.gather(*(worker() for _ in range(80)))
    expected_house = sum(
        s.entries[0].amount_minor * (1 if s.kind == "game_bet" else -1) for s in done
    )
    assert (await _net(sessions, house))[0] - before[0] == expected_house
    for player in players:
        mine = [
            s
            for s in done
            if s.entries[0].account.owner_id == player or s.entries[1].account.owner_id == player
        ]
        moved = sum(s.entries[0].amount_minor * (-1 if s.kind == "game_bet" else 1) for s in mine)
        assert await _balance(sessions, player) == (5_000 + moved, 0)
    await assert_invariants(sessions)


class WorkerCrashed(Exception):
    """The activity's process died after the database committed, before it could reply."""


async def test_crash_after_commit_is_retried_into_the_original_result(sessions: Sessions) -> None:
    player, deposit = fresh("pl"), fresh("dep")
    spec = deposit_credit(
        deposit_id=deposit,
        player_id=player,
        provider="halyk",
        amount_minor=9_000,
        currency="KZT",
    )

    async def activity(*, crash: bool) -> ledger_store.PostedTransaction:
        posted = await ledger_store.post(sessions, spec)
        if crash:
            raise WorkerCrashed(posted.key)
        return posted

    with pytest.raises(WorkerCrashed):
        await activity(crash=True)
    retried = await activity(crash=False)
    assert not retried.created
    assert await _count(sessions, spec.key) == 1
    assert await _balance(sessions, player) == (9_000, 0)

    # A retry racing the original (the worker was only slow): still one transaction.
    racing = await asyncio.gather(*(activity(crash=False) for _ in range(10)))
    assert {p.id for p in racing} == {retried.id}

    # The same for a two-phase payout: hold, crash; post, crash; each retried.
    wd = fresh("wd")
    hold = withdrawal_hold(
        withdrawal_id=wd,
        player_id=player,
        provider="halyk",
        amount_minor=4_000,
        currency="KZT",
    )
    first_hold = await ledger_store.post(sessions, hold)
    assert (await ledger_store.post(sessions, hold)).id == first_hold.id
    first_post = await ledger_store.resolve(sessions, withdrawal_post(withdrawal_id=wd))
    replays = await asyncio.gather(
        *(ledger_store.resolve(sessions, withdrawal_post(withdrawal_id=wd)) for _ in range(5))
    )
    assert {(r.id, r.created) for r in replays} == {(first_post.id, False)}
    assert await _count(sessions, f"wd:{wd}:post") == 1
    assert await _balance(sessions, player) == (5_000, 0)
    # The workflow's compensation after a lost reply must not release what was paid.
    with pytest.raises(ledger_store.PendingAlreadyResolved):
        await ledger_store.resolve(sessions, withdrawal_void(withdrawal_id=wd))
    await assert_invariants(sessions)


async def test_crash_inside_the_transaction_leaves_nothing_and_retries_cleanly(
    sessions: Sessions,
) -> None:
    """A crash before commit (in a caller's transaction) rolls the posting back entirely."""
    player = fresh("pl")
    spec = deposit_credit(
        deposit_id=fresh("dep"),
        player_id=player,
        provider="halyk",
        amount_minor=1_000,
        currency="KZT",
    )

    async def crashing_activity() -> None:
        async with sessions.begin() as session:
            await ledger_store.post_transaction(session, spec=spec)
            raise WorkerCrashed("before commit")

    with pytest.raises(WorkerCrashed):
        await crashing_activity()
    assert await _count(sessions, spec.key) == 0
    assert await _balance(sessions, player) == (0, 0)
    assert (await ledger_store.post(sessions, spec)).created
    assert await _balance(sessions, player) == (1_000, 0)


async def test_batcher_gives_each_posting_its_own_outcome(sessions: Sessions) -> None:
    """Group commit: one statement for many postings, yet a refusal undoes only itself and a
    duplicate in the same batch returns the original."""
    batcher = ledger_store.LedgerBatcher(sessions, max_batch=16, parallel=2)
    player = fresh("pl")
    funding = deposit_credit(
        deposit_id=fresh("dep"),
        player_id=player,
        provider="halyk",
        amount_minor=1_000,
        currency="KZT",
    )
    await batcher.post(funding)
    bets = [
        game_transaction(
            player_id=player,
            round_id=fresh("round"),
            type="bet",
            amount_minor=300,
            currency="KZT",
        )
        for _ in range(6)
    ]
    outcomes = await asyncio.gather(
        *(batcher.post(spec) for spec in [*bets, bets[0], funding]),
        return_exceptions=True,
    )
    won = [o for o in outcomes[:6] if isinstance(o, ledger_store.PostedTransaction)]
    refused = [o for o in outcomes[:6] if isinstance(o, ledger_store.InsufficientFunds)]
    assert (len(won), len(refused)) == (3, 3)
    duplicate, replayed_funding = outcomes[6], outcomes[7]
    first = outcomes[0]
    if isinstance(first, ledger_store.PostedTransaction):
        assert isinstance(duplicate, ledger_store.PostedTransaction)
        assert (duplicate.id, duplicate.created) == (first.id, False)
    else:
        assert isinstance(duplicate, ledger_store.InsufficientFunds)
    assert isinstance(replayed_funding, ledger_store.PostedTransaction)
    assert not replayed_funding.created
    assert await _balance(sessions, player) == (100, 0)
    hold = withdrawal_hold(
        withdrawal_id=fresh("wd"),
        player_id=player,
        provider="halyk",
        amount_minor=100,
        currency="KZT",
    )
    await batcher.post(hold)
    assert (await batcher.resolve(withdrawal_post(withdrawal_id=str(hold.payment_id)))).created
    with pytest.raises(ledger_store.PendingAlreadyResolved):
        await batcher.resolve(withdrawal_void(withdrawal_id=str(hold.payment_id)))
    assert await _balance(sessions, player) == (0, 0)
    await assert_invariants(sessions)
