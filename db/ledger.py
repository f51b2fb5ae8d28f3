"""Posting to the ledger, exactly once, in one database round trip.

The work happens in the `ledger_post_try` PL/pgSQL function (migration 0070): it creates
missing accounts, locks them in code order, checks the idempotency key under those locks and
the balance flags before it writes, then writes the transaction, its entries, the cached
counters and the per-day wallet totals in one statement. `ledger_post` raises its refusals as
custom SQLSTATEs, which become the exceptions below; `ledger_post_batch` reports them per row.
"""

import asyncio
import hashlib
import json
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.models import LedgerAccount, LedgerEntry, LedgerTransaction
from domain.ledger import (
    AccountRef,
    AccountType,
    Entry,
    PendingResolution,
    Side,
    TransactionSpec,
    reversal,
    shard_for,
)


class LedgerError(Exception):
    """Base of the ledger's business refusals; none is helped by retrying."""


class LedgerKeyConflict(LedgerError):
    """The key was posted before with different content."""


class InsufficientFunds(LedgerError):
    """The posting would take an account past its balance flag."""


class PendingNotFound(LedgerError):
    """No pending transfer has that key."""


class PendingAlreadyResolved(LedgerError):
    """The pending transfer was posted or voided under another key."""


class InvalidPostAmount(LedgerError):
    """A partial post must be positive and at most the pending amount."""


_ERRORS: dict[str, type[LedgerError]] = {
    "LG409": LedgerKeyConflict,
    "LG402": InsufficientFunds,
    "LG404": PendingNotFound,
    "LG410": PendingAlreadyResolved,
    "LG422": InvalidPostAmount,
}
_RETRYABLE = {"40001", "40P01"}  # serialization failure, deadlock


@dataclass(frozen=True)
class PostedTransaction:
    id: int
    key: str
    created: bool


_POST = text(
    "SELECT tx_id, created FROM ledger_post(:key, :kind, :payment_id, :hash, :phase, "
    ":pending_key, :amount, CAST(:accounts AS jsonb), CAST(:entries AS jsonb))"
)


def _sqlstate(exc: DBAPIError) -> str | None:
    state = getattr(exc.orig, "sqlstate", None)
    return state if isinstance(state, str) else None


async def _call(session: AsyncSession, params: dict[str, object]) -> PostedTransaction:
    try:
        row = (await session.execute(_POST, params)).one()
    except DBAPIError as exc:
        error = _ERRORS.get(_sqlstate(exc) or "")
        if error is not None:
            raise error(str(exc.orig).splitlines()[0]) from exc
        raise
    return PostedTransaction(id=int(row.tx_id), key=str(params["key"]), created=bool(row.created))


def _account_json(ref: AccountRef) -> dict[str, object]:
    return {
        "code": ref.code,
        "type": ref.type.value,
        "currency": ref.currency,
        "owner_id": ref.owner_id,
        "flag": ref.debits_must_not_exceed_credits,
    }


async def post_transaction(session: AsyncSession, *, spec: TransactionSpec) -> PostedTransaction:
    """Post `spec` (posted or pending) inside the caller's database transaction."""
    return await _call(session, _spec_params(spec))


def _spec_item(spec: TransactionSpec) -> dict[str, object]:
    accounts = {e.account.code: _account_json(e.account) for e in spec.entries}
    return {
        "key": spec.key,
        "kind": spec.kind,
        "payment_id": spec.payment_id,
        "hash": spec.content_hash,
        "phase": spec.phase,
        "pending_key": None,
        "amount": None,
        "accounts": list(accounts.values()),
        "entries": [
            {"code": e.account.code, "side": e.side.value, "amount": e.amount_minor}
            for e in spec.entries
        ],
    }


_POST_BATCH = text(
    "SELECT idx, tx_id, created, error_state, error_message "
    "FROM ledger_post_batch(CAST(:items AS jsonb))"
)


async def post_transactions(
    session: AsyncSession, *, specs: Sequence[TransactionSpec]
) -> list[PostedTransaction]:
    """Post every spec inside the caller's database transaction, all or none, in one statement.

    `ledger_post_batch` locks all the specs' accounts in code order first, so two such calls
    cannot deadlock on each other's accounts (two `post_transaction` calls in one transaction
    can: each locks its own accounts only). A refused spec raises its LedgerError; the caller's
    transaction must then roll back, which undoes the others.
    """
    rows = (
        await session.execute(_POST_BATCH, {"items": json.dumps([_spec_item(s) for s in specs])})
    ).all()
    posted: list[PostedTransaction] = []
    for row in sorted(rows, key=lambda r: int(r.idx)):
        if row.error_state is not None:
            raise _ERRORS.get(row.error_state, LedgerError)(row.error_message)
        key = specs[int(row.idx)].key
        posted.append(PostedTransaction(id=int(row.tx_id), key=key, created=bool(row.created)))
    return posted


def _spec_params(spec: TransactionSpec) -> dict[str, object]:
    item = _spec_item(spec)
    return {
        **item,
        "accounts": json.dumps(item["accounts"]),
        "entries": json.dumps(item["entries"]),
    }


async def resolve_pending(
    session: AsyncSession, *, resolution: PendingResolution
) -> PostedTransaction:
    """Post (fully or partly) or void a pending transfer, exactly once."""
    return await _call(session, _resolution_params(resolution))


def _resolution_item(resolution: PendingResolution) -> dict[str, object]:
    # No amount on a post means the full pending amount; ledger_post (0030) looks it up.
    return {
        "key": resolution.key,
        "kind": resolution.kind,
        "payment_id": resolution.payment_id,
        "hash": resolution.content_hash,
        "phase": "post_pending" if resolution.action == "post" else "void_pending",
        "pending_key": resolution.pending_key,
        "amount": resolution.amount_minor,
        "accounts": None,
        "entries": [],
    }


def _resolution_params(resolution: PendingResolution) -> dict[str, object]:
    return {**_resolution_item(resolution), "entries": "[]"}


T = TypeVar("T")


async def with_retry(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 8,
) -> T:
    """Run `work` in its own transaction, again on deadlock or serialization failure."""
    for attempt in range(1, attempts + 1):
        try:
            async with sessions.begin() as session:
                return await work(session)
        except DBAPIError as exc:
            if _sqlstate(exc) not in _RETRYABLE or attempt == attempts:
                raise
            await asyncio.sleep(0.005 * 2**attempt)
    raise AssertionError("unreachable")


# The same call as _POST for the driver itself: one statement, its own implicit transaction.
_POST_DRIVER = (
    "SELECT tx_id, created FROM ledger_post(%(key)s, %(kind)s, %(payment_id)s, %(hash)s, "
    "%(phase)s, %(pending_key)s, %(amount)s, %(accounts)s::jsonb, %(entries)s::jsonb)"
)


async def _post_alone(
    sessions: async_sessionmaker[AsyncSession], params: dict[str, object], *, attempts: int = 8
) -> PostedTransaction:
    """One posting as one autocommit statement: a single round trip, no BEGIN or COMMIT.

    `ledger_post` is one statement, so it commits or rolls back as a whole; the idempotency key
    makes a retry after an unknown outcome (a lost connection) safe.
    """
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):

        async def work(session: AsyncSession) -> PostedTransaction:
            return await _call(session, params)

        return await with_retry(sessions, work, attempts=attempts)
    rows = await _autocommit(engine, _POST_DRIVER, params, attempts=attempts)
    return PostedTransaction(id=int(rows[0][0]), key=str(params["key"]), created=bool(rows[0][1]))


async def _autocommit(
    engine: AsyncEngine, query: str, params: dict[str, object], *, attempts: int
) -> list[tuple[Any, ...]]:
    """Run one statement in its own implicit transaction on a pooled driver connection."""
    return (await _autocommit_all(engine, [(query, params)], attempts=attempts))[0]


async def _autocommit_all(
    engine: AsyncEngine, queries: Sequence[tuple[str, dict[str, object]]], *, attempts: int
) -> list[list[tuple[Any, ...]]]:
    """Run statements one after the other, each in its own implicit transaction, on one pooled
    driver connection; all of them again on deadlock or serialization failure (so each must be
    safe to repeat: the ledger's postings are idempotent)."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.connect() as conn:
                driver: psycopg.AsyncConnection[Any] | None = (
                    await conn.get_raw_connection()
                ).driver_connection
                assert driver is not None
                await driver.set_autocommit(True)
                try:
                    return [
                        await (await driver.execute(query, params)).fetchall()
                        for query, params in queries
                    ]
                finally:
                    if driver.closed or driver.info.transaction_status != TransactionStatus.IDLE:
                        await conn.invalidate()
                    else:
                        await driver.set_autocommit(False)
        except psycopg.Error as exc:
            state = exc.sqlstate or ""
            error = _ERRORS.get(state)
            if error is not None:
                raise error(str(exc).splitlines()[0]) from exc
            # A connection lost (a pooled one PostgreSQL closed: a pool without pre-ping meets
            # it here) is tried again on another: every statement here is idempotent.
            lost = isinstance(exc, psycopg.OperationalError) and state in ("", "57P01", "57P02")
            if (state not in _RETRYABLE and not lost) or attempt == attempts:
                raise
            await asyncio.sleep(0.005 * 2**attempt)
    raise AssertionError("unreachable")


_Queued = tuple[
    dict[str, object], "asyncio.Future[tuple[PostedTransaction, int | None]]", str | None
]


_SHARED: "weakref.WeakKeyDictionary[Engine, LedgerBatcher]" = weakref.WeakKeyDictionary()


class LedgerBatcher:
    """Group commit for a process that posts a lot: concurrent `post`/`resolve` calls are sent
    together through `ledger_post_batch` (migrations 0031, 0070), one statement and one WAL
    flush per batch. Each caller still gets its own result or its own LedgerError; a batch that
    deadlocks is retried whole (every posting is idempotent).

    Postings go to `parallel` lanes, each with one batch in flight, by the shard their house
    accounts are in (`domain.ledger.shard_for` of the key that chose it). A batch locks all its
    accounts, so batches that shared house shards would run one after the other; with the house
    shard count a multiple of `parallel`, two lanes never touch the same house shard and their
    batches only meet on a player wallet now and then.

    `post_and_balance` also answers an account's available balance right after the batch (the
    wallet API's answer): read in the batch's own statement (`ledger_post_batch_balances`,
    migration 0210), whatever the number of postings in it that asked.

    The deposit and withdrawal activities share one per process (`shared`); `batches` and
    `postings` count what it sent.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], *, max_batch: int = 64, parallel: int = 4
    ) -> None:
        engine = sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("LedgerBatcher needs a sessionmaker bound to an AsyncEngine")
        self._engine = engine
        self._max_batch = max_batch
        self._lanes: list[list[_Queued]] = [[] for _ in range(max(parallel, 1))]
        self._senders: dict[int, asyncio.Task[None]] = {}
        self.batches = 0
        """Batches sent so far (statements of `ledger_post_batch`)."""
        self.postings = 0
        """Postings sent so far in those batches (replays included)."""

    @classmethod
    def shared(cls, sessions: async_sessionmaker[AsyncSession]) -> "LedgerBatcher":
        """The one batcher of this process for the engine `sessions` is bound to: the worker's
        deposit and withdrawal activities then share batches (and their WAL flushes)."""
        engine = sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("LedgerBatcher needs a sessionmaker bound to an AsyncEngine")
        batcher = _SHARED.get(engine.sync_engine)
        if batcher is None:
            batcher = _SHARED[engine.sync_engine] = cls(sessions)
        return batcher

    async def post(self, spec: TransactionSpec) -> PostedTransaction:
        posted, _ = await self._submit(_spec_item(spec), shard_key=spec.key, balance_of=None)
        return posted

    async def post_many(self, specs: Sequence[TransactionSpec]) -> list[PostedTransaction]:
        """Post each spec exactly once, concurrently (each in its lane's next batch); the
        results in order. Each is its own posting under its own key: a refusal of one (its
        LedgerError is raised) does not undo the others, and a retry posts only what is missing.
        Batches lock all their accounts in code order first, so the specs' batches cannot
        deadlock on each other."""
        return list(await asyncio.gather(*(self.post(spec) for spec in specs)))

    async def post_and_balance(
        self, spec: TransactionSpec, *, account_code: str
    ) -> tuple[PostedTransaction, int]:
        """Post `spec`; with the available balance (credits - debits - pending debits) of
        `account_code` just after its batch committed."""
        posted, balance = await self._submit(
            _spec_item(spec), shard_key=spec.key, balance_of=account_code
        )
        return posted, balance or 0

    async def resolve(self, resolution: PendingResolution) -> PostedTransaction:
        # A resolution moves the pending transfer's accounts, whose shards its key chose.
        posted, _ = await self._submit(
            _resolution_item(resolution), shard_key=resolution.pending_key, balance_of=None
        )
        return posted

    async def _submit(
        self, item: dict[str, object], *, shard_key: str, balance_of: str | None
    ) -> tuple[PostedTransaction, int | None]:
        future: asyncio.Future[tuple[PostedTransaction, int | None]] = (
            asyncio.get_running_loop().create_future()
        )
        lane = shard_for(shard_key, len(self._lanes))
        self._lanes[lane].append((item, future, balance_of))
        sender = self._senders.get(lane)
        # A finished sender may not have left the dict yet; one of an event loop that has ended
        # (a process-wide batcher outlives a test's loop) never runs again.
        if sender is None or sender.done() or sender.get_loop() is not future.get_loop():
            self._senders[lane] = asyncio.create_task(self._drain(lane))
        return await future

    async def _drain(self, lane: int) -> None:
        queue = self._lanes[lane]
        while queue:
            batch = queue[: self._max_batch]
            del queue[: self._max_batch]
            codes = sorted({code for _, _, code in batch if code is not None})
            # One statement (migration 0210): the batch, then the asked-for balances as they
            # are after it, in the same implicit transaction.
            query = (
                "SELECT idx, tx_id, created, error_state, error_message, code, available "
                "FROM ledger_post_batch_balances(%(items)s::jsonb, %(codes)s::text[])"
            )
            params: dict[str, object] = {
                "items": json.dumps([item for item, _, _ in batch]),
                "codes": codes,
            }
            self.batches += 1
            self.postings += len(batch)
            try:
                rows = await _autocommit(self._engine, query, params, attempts=8)
            except Exception as exc:  # the whole batch failed: every caller hears it
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            balances = {
                str(code): int(available)
                for idx, *_, code, available in rows
                if idx is None and code is not None
            }
            for idx, tx_id, created, state, message, _, _ in rows:
                if idx is None:
                    continue
                item, future, code = batch[idx]
                if future.done():
                    continue
                if state is not None:
                    future.set_exception(_ERRORS.get(state, LedgerError)(message))
                else:
                    posted = PostedTransaction(id=int(tx_id), key=str(item["key"]), created=created)
                    future.set_result((posted, balances.get(code) if code else None))


async def post(
    sessions: async_sessionmaker[AsyncSession], spec: TransactionSpec
) -> PostedTransaction:
    """Post `spec` on its own, exactly once; retried on deadlock or serialization failure."""
    return await _post_alone(sessions, _spec_params(spec))


async def resolve(
    sessions: async_sessionmaker[AsyncSession], resolution: PendingResolution
) -> PostedTransaction:
    """Post (fully or partly) or void a pending transfer on its own, exactly once."""
    return await _post_alone(sessions, _resolution_params(resolution))


async def load_spec(session: AsyncSession, *, key: str) -> TransactionSpec | None:
    """A posted transaction as a spec again, e.g. to build its reversal."""
    transaction = await session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.key == key)
    )
    if transaction is None:
        return None
    rows = await session.execute(
        select(LedgerEntry, LedgerAccount)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerEntry.transaction_id == transaction.id)
        .order_by(LedgerEntry.id)
    )
    entries = tuple(
        Entry(
            AccountRef(account.code, AccountType(account.type), account.currency, account.owner_id),
            Side(entry.side),
            entry.amount_minor,
        )
        for entry, account in rows.all()
    )
    return TransactionSpec(
        key=transaction.key,
        kind=transaction.kind,
        payment_id=transaction.payment_id,
        entries=entries,
    )


async def reverse(session: AsyncSession, *, key: str) -> PostedTransaction:
    """Correct a posted transaction by posting its mirror image under `{key}:reversal`."""
    original = await load_spec(session, key=key)
    if original is None:
        raise PendingNotFound(key)
    return await post_transaction(session, spec=reversal(original))


_CLAIM = text("SELECT claimed, kind FROM ledger_claim_key(:key, :kind, :hash, :lock_code)")


async def claim_key(session: AsyncSession, *, key: str, kind: str, lock_code: str) -> str | None:
    """Claim `key` with a marker that moves no money (migration 0210), under the lock every
    posting on account `lock_code` takes: a later posting under `key` is refused (LG409).
    None when the marker is written (now or before, by the same kind of claim); else the kind
    of the posting that holds the key."""
    marker = hashlib.sha256(json.dumps([kind, lock_code]).encode()).hexdigest()
    row = (
        await session.execute(
            _CLAIM, {"key": key, "kind": kind, "hash": marker, "lock_code": lock_code}
        )
    ).one()
    return None if row.claimed or row.kind == kind else str(row.kind)


_POSTING = text(
    "SELECT t.kind, t.payment_id, a.code, a.type, a.currency, a.owner_id, e.side, "
    "e.amount_minor FROM ledger_transactions t "
    "LEFT JOIN ledger_entries e ON e.transaction_id = t.id "
    "LEFT JOIN ledger_accounts a ON a.id = e.account_id "
    "WHERE t.key = :key ORDER BY e.id"
)


async def load_posting(
    session: AsyncSession, *, key: str
) -> tuple[str, TransactionSpec | None] | None:
    """What the ledger holds under `key` in one query: its kind, with the posting as a spec
    (None for a claim, which has no entries); None when the key is free."""
    rows = (await session.execute(_POSTING, {"key": key})).all()
    if not rows:
        return None
    kind = str(rows[0].kind)
    if rows[0].code is None:
        return kind, None
    entries = tuple(
        Entry(
            AccountRef(row.code, AccountType(row.type), row.currency, row.owner_id),
            Side(row.side),
            int(row.amount_minor),
        )
        for row in rows
    )
    return kind, TransactionSpec(key=key, kind=kind, payment_id=rows[0].payment_id, entries=entries)


async def posting_kind(session: AsyncSession, *, key: str) -> str | None:
    """The kind of what the ledger holds under `key` (a posting or a claim), or None."""
    found = await session.scalar(
        text("SELECT kind FROM ledger_transactions WHERE key = :key"), {"key": key}
    )
    return None if found is None else str(found)


async def transactions_for_payment(session: AsyncSession, *, payment_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(LedgerTransaction.key)
                .where(LedgerTransaction.payment_id == payment_id)
                .order_by(LedgerTransaction.id)
            )
        ).all()
    )


@dataclass(frozen=True)
class StatementLine:
    entry_id: int
    transaction_id: int
    transaction_key: str
    kind: str
    side: str
    amount_minor: int
    phase: str
    balance_after_minor: int
    created_at: datetime


async def statement(
    session: AsyncSession, *, account_code: str, limit: int, after_entry_id: int | None
) -> list[StatementLine]:
    """Entries of one account, oldest first, each with the posted balance after it.

    For a wallet (a liability) balance means credits minus debits; pending holds are listed
    with the balance unchanged, and the line that posts them moves it.
    """
    # A player wallet's balances are stored with its entries (migration 0170): a page is an
    # index range, however long the history. Other accounts still sum their whole history.
    stored = await session.execute(
        text(
            """
            SELECT e.id, t.id AS tx_id, t.key, t.kind, e.side, e.amount_minor, t.phase,
                   t.created_at, b.balance_after
            FROM ledger_accounts a
            JOIN ledger_entries e ON e.account_id = a.id
            JOIN ledger_entry_balances b ON b.account_id = a.id AND b.entry_id = e.id
            JOIN ledger_transactions t ON t.id = e.transaction_id
            WHERE a.code = :code AND a.type = 'player_wallet'
              AND e.id > coalesce(CAST(:after AS bigint), 0)
            ORDER BY e.id
            LIMIT :limit
            """
        ),
        {"code": account_code, "after": after_entry_id, "limit": limit},
    )
    found = stored.all()
    is_wallet = bool(found) or bool(
        await session.scalar(
            text("SELECT true FROM ledger_accounts WHERE code = :code AND type = 'player_wallet'"),
            {"code": account_code},
        )
    )
    if is_wallet:
        return [_statement_line(row) for row in found]
    rows = await session.execute(
        text(
            """
            SELECT * FROM (
                SELECT e.id, t.id AS tx_id, t.key, t.kind, e.side, e.amount_minor, t.phase,
                       t.created_at,
                       sum(CASE WHEN t.phase = 'pending' THEN 0
                                WHEN e.side = 'C' THEN e.amount_minor
                                ELSE -e.amount_minor END)
                           OVER (ORDER BY e.id) AS balance_after
                FROM ledger_entries e
                JOIN ledger_accounts a ON a.id = e.account_id
                JOIN ledger_transactions t ON t.id = e.transaction_id
                WHERE a.code = :code
            ) lines
            WHERE CAST(:after AS bigint) IS NULL OR id > CAST(:after AS bigint)
            ORDER BY id
            LIMIT :limit
            """
        ),
        {"code": account_code, "after": after_entry_id, "limit": limit},
    )
    return [_statement_line(row) for row in rows]


def _statement_line(row: Any) -> StatementLine:
    return StatementLine(
        entry_id=row.id,
        transaction_id=row.tx_id,
        transaction_key=row.key,
        kind=row.kind,
        side=row.side,
        amount_minor=row.amount_minor,
        phase=row.phase,
        balance_after_minor=int(row.balance_after),
        created_at=row.created_at,
    )
