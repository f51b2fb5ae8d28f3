"""The ledger store against a reference model: a hypothesis state machine on real PostgreSQL.

Hypothesis drives the machine synchronously; the store is async. Each run talks to the session's
embedded PostgreSQL through its own engine on a private event loop in a thread, so it never
touches the pytest-asyncio loop (or the engine bound to it).
"""

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import ledger as ledger_store
from db import players as player_store
from db.engine import make_engine, make_sessionmaker
from db.ledger_check import run_checks
from domain.ledger import (
    PendingResolution,
    TransactionSpec,
    deposit_credit,
    game_transaction,
    reversal,
    withdrawal_hold,
    withdrawal_post,
    withdrawal_void,
)
from tests.ledger_helpers import fresh

T = TypeVar("T")
CURRENCY = "KZT"


class LoopThread:
    """An event loop in a thread with its own engine: `run(coro)` from synchronous code."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.engine = self.run(self._engine(database_url))
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)

    @staticmethod
    async def _engine(database_url: str) -> Any:
        return make_engine(database_url, pool_size=2)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=60)

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def loop_thread(database_url: str) -> Iterator[LoopThread]:
    runner = LoopThread(database_url)
    yield runner
    runner.close()


@dataclass
class Hold:
    withdrawal_id: str
    player: int
    amount: int
    resolved_by: str | None = None  # the resolution key that posted or voided it
    resolution_hash: str | None = None


@dataclass
class Model:
    """What the ledger must say: available and held per player, and every key's outcome."""

    available: list[int] = field(default_factory=lambda: [0, 0])
    held: list[int] = field(default_factory=lambda: [0, 0])
    posted: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (hash, tx id)


Outcome = Literal["created", "replayed"]


class LedgerMachine(RuleBasedStateMachine):
    runner: LoopThread  # set by the test before the machine runs

    postings = Bundle("postings")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.players = [fresh("pl"), fresh("pl")]
        self.model = Model()

    # -- helpers ---------------------------------------------------------------------------

    def _run(self, coro: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return self.runner.run(wrap())

    def _post(self, spec: TransactionSpec) -> ledger_store.PostedTransaction:
        return self._run(ledger_store.post(self.runner.sessions, spec))

    def _expect_posted(self, spec: TransactionSpec) -> None:
        """Post a spec the model says is new and fits the balance."""
        posted = self._post(spec)
        assert posted.created
        self.model.posted[spec.key] = (spec.content_hash, posted.id)

    def _wallet_delta(self, spec: TransactionSpec) -> dict[int, int]:
        delta: dict[int, int] = {}
        for entry in spec.entries:
            if entry.account.owner_id in self.players:
                index = self.players.index(entry.account.owner_id)
                sign = 1 if entry.side.value == "C" else -1
                delta[index] = delta.get(index, 0) + sign * entry.amount_minor
        return delta

    def _post_and_model(self, spec: TransactionSpec) -> None:
        """Post; the model decides whether it fits (InsufficientFunds) before the store does."""
        delta = self._wallet_delta(spec)
        if any(self.model.available[i] + d < 0 for i, d in delta.items()):
            with pytest.raises(ledger_store.InsufficientFunds):
                self._post(spec)
            return
        self._expect_posted(spec)
        for index, change in delta.items():
            self.model.available[index] += change

    # -- rules -----------------------------------------------------------------------------

    @initialize()
    def start(self) -> None:
        assert self.runner is not None

    @rule(
        target=postings,
        player=st.integers(0, 1),
        amount=st.integers(1, 20_000),
    )
    def deposit(self, player: int, amount: int) -> TransactionSpec:
        spec = deposit_credit(
            deposit_id=fresh("dep"),
            player_id=self.players[player],
            provider="halyk",
            amount_minor=amount,
            currency=CURRENCY,
            shards=3,
        )
        self._post_and_model(spec)
        return spec

    @rule(
        target=postings,
        player=st.integers(0, 1),
        type_=st.sampled_from(["bet", "bet", "win", "refund"]),
        amount=st.integers(1, 15_000),
    )
    def game(self, player: int, type_: Literal["bet", "win", "refund"], amount: int) -> Any:
        spec = game_transaction(
            player_id=self.players[player],
            round_id=fresh("round"),
            type=type_,
            amount_minor=amount,
            currency=CURRENCY,
            shards=2,
        )
        self._post_and_model(spec)
        return spec

    @rule(target=holds, player=st.integers(0, 1), amount=st.integers(1, 15_000))
    def hold(self, player: int, amount: int) -> Hold:
        withdrawal_id = fresh("wd")
        spec = withdrawal_hold(
            withdrawal_id=withdrawal_id,
            player_id=self.players[player],
            provider="halyk",
            amount_minor=amount,
            currency=CURRENCY,
            shards=2,
        )
        hold = Hold(withdrawal_id, player, amount)
        if amount > self.model.available[player]:
            with pytest.raises(ledger_store.InsufficientFunds):
                self._post(spec)
            hold.resolved_by = "never held"  # nothing to resolve: resolving finds no pending
            return hold
        self._expect_posted(spec)
        self.model.available[player] -= amount
        self.model.held[player] += amount
        return hold

    def _resolve(self, hold: Hold, resolution: PendingResolution) -> None:
        known = self.model.posted.get(resolution.key)
        if hold.resolved_by == "never held":
            with pytest.raises(ledger_store.PendingNotFound):
                self._run(ledger_store.resolve(self.runner.sessions, resolution))
        elif known is not None:  # a retry of this very resolution
            if known[0] == resolution.content_hash:
                again = self._run(ledger_store.resolve(self.runner.sessions, resolution))
                assert (again.created, again.id) == (False, known[1])
            else:
                with pytest.raises(ledger_store.LedgerKeyConflict):
                    self._run(ledger_store.resolve(self.runner.sessions, resolution))
        elif hold.resolved_by is not None:
            with pytest.raises(ledger_store.PendingAlreadyResolved):
                self._run(ledger_store.resolve(self.runner.sessions, resolution))
        elif resolution.amount_minor is not None and not (
            0 < resolution.amount_minor <= hold.amount
        ):
            with pytest.raises(ledger_store.InvalidPostAmount):
                self._run(ledger_store.resolve(self.runner.sessions, resolution))
        else:
            posted = self._run(ledger_store.resolve(self.runner.sessions, resolution))
            assert posted.created
            self.model.posted[resolution.key] = (resolution.content_hash, posted.id)
            hold.resolved_by = resolution.key
            self.model.held[hold.player] -= hold.amount
            if resolution.action == "void":
                self.model.available[hold.player] += hold.amount
            else:
                paid = hold.amount if resolution.amount_minor is None else resolution.amount_minor
                self.model.available[hold.player] += hold.amount - paid

    @rule(
        hold=holds,
        amount=st.one_of(st.none(), st.integers(-5, 16_000)),
    )
    def post_hold(self, hold: Hold, amount: int | None) -> None:
        resolution = withdrawal_post(withdrawal_id=hold.withdrawal_id)
        if amount is not None:
            resolution = PendingResolution(
                key=resolution.key,
                kind=resolution.kind,
                payment_id=resolution.payment_id,
                pending_key=resolution.pending_key,
                action="post",
                amount_minor=amount,
            )
        self._resolve(hold, resolution)

    @rule(hold=holds)
    def void_hold(self, hold: Hold) -> None:
        self._resolve(hold, withdrawal_void(withdrawal_id=hold.withdrawal_id))

    @rule(spec=postings)
    def replay_same(self, spec: TransactionSpec) -> None:
        """A retried activity: the same key and content returns the original, moves nothing."""
        known = self.model.posted.get(spec.key)
        if known is None:  # it was refused: a replay is a fresh attempt
            self._post_and_model(spec)
            return
        again = self._post(spec)
        assert (again.created, again.id) == (False, known[1])

    @rule(spec=postings, extra=st.integers(1, 1_000))
    def replay_different(self, spec: TransactionSpec, extra: int) -> None:
        if spec.key not in self.model.posted:
            return
        entries = tuple(type(e)(e.account, e.side, e.amount_minor + extra) for e in spec.entries)
        changed = TransactionSpec(
            key=spec.key, kind=spec.kind, payment_id=spec.payment_id, entries=entries
        )
        with pytest.raises(ledger_store.LedgerKeyConflict):
            self._post(changed)

    @rule(spec=postings)
    def reverse(self, spec: TransactionSpec) -> None:
        """A correction posts the mirror image once; a repeat returns it; overdraw is refused."""
        if spec.key not in self.model.posted:
            return
        mirror = reversal(spec)

        async def work(session: AsyncSession) -> ledger_store.PostedTransaction:
            return await ledger_store.reverse(session, key=spec.key)

        known = self.model.posted.get(mirror.key)
        if known is not None:
            again = self._run(ledger_store.with_retry(self.runner.sessions, work))
            assert (again.created, again.id) == (False, known[1])
            return
        delta = self._wallet_delta(mirror)
        if any(self.model.available[i] + d < 0 for i, d in delta.items()):
            with pytest.raises(ledger_store.InsufficientFunds):
                self._run(ledger_store.with_retry(self.runner.sessions, work))
            return
        posted = self._run(ledger_store.with_retry(self.runner.sessions, work))
        assert posted.created
        self.model.posted[mirror.key] = (mirror.content_hash, posted.id)
        for index, change in delta.items():
            self.model.available[index] += change

    @rule(player=st.integers(0, 1), extra=st.integers(1, 5_000))
    def overdraw(self, player: int, extra: int) -> None:
        """A bet of more than the available balance is always refused."""
        spec = game_transaction(
            player_id=self.players[player],
            round_id=fresh("round"),
            type="bet",
            amount_minor=self.model.available[player] + extra,
            currency=CURRENCY,
        )
        with pytest.raises(ledger_store.InsufficientFunds):
            self._post(spec)

    # -- checks ----------------------------------------------------------------------------

    @invariant()
    def balances_match_the_model(self) -> None:
        async def balances() -> list[tuple[int, int]]:
            async with self.runner.sessions() as session:
                out = []
                for player in self.players:
                    balance = await player_store.get_balance(
                        session, player_id=player, currency=CURRENCY
                    )
                    out.append((balance.available_minor, balance.held_minor))
                return out

        expected = list(zip(self.model.available, self.model.held, strict=True))
        assert self._run(balances()) == expected

    def teardown(self) -> None:
        async def check() -> dict[str, list[str]]:
            async with self.runner.sessions() as session:
                results = await run_checks(session)
            return {r.name: r.offenders[:5] for r in results if not r.ok}

        assert self._run(check()) == {}


def test_ledger_matches_reference_model(loop_thread: LoopThread) -> None:
    LedgerMachine.runner = loop_thread
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        ),
    )
