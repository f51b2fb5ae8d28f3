"""Game turnover on a player's wallet, and the wallet's statement with a running balance.

A game transaction is one ledger posting (`domain.ledger.game_transaction`), idempotent on the
player's `round_id` + `type`: the same round and type with the same amount returns the original
posting; with another amount it is 409 `game_transaction_conflict`. An `Idempotency-Key` header
is honoured as on every other POST.
"""

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import SessionDep, SettingsDep, StateDep
from api.errors import Problem
from api.idempotency import fingerprint
from api.schemas import BalanceOut, LedgerTransactionOut, StrictModel
from db import idempotency
from db import ledger as ledger_store
from db import players as player_store
from domain.ledger import game_transaction, player_wallet

router = APIRouter(prefix="/v1/players", tags=["ledger"])

_PROBLEMS = {
    400: {"description": "invalid_cursor / invalid_idempotency_key"},
    404: {"description": "player_not_found"},
    409: {"description": "game_transaction_conflict / idempotency_key_reused"},
    422: {
        "description": "insufficient_funds, no_bet_to_refund, refund_exceeds_bet, "
        "unsupported_currency, validation_error"
    },
}


class GameTransactionCreate(StrictModel):
    type: Literal["bet", "win", "refund"] = Field(
        description="bet debits the wallet; win and refund credit it"
    )
    amount: StrictInt = Field(gt=0, le=10**13, description="minor units (tiyn)")
    currency: str = Field(default="KZT", min_length=3, max_length=3)
    round_id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="the casino's round id; with `type` it makes the posting idempotent",
    )


class GameTransactionOut(BaseModel):
    object: Literal["game_transaction"] = "game_transaction"
    player_id: str
    type: str
    round_id: str
    amount: int
    currency: str
    transaction: LedgerTransactionOut = Field(description="the ledger transaction posted")
    balance: BalanceOut = Field(description="the wallet's balance after the posting")


class StatementLineOut(BaseModel):
    entry_id: int
    transaction: LedgerTransactionOut
    side: Literal["debit", "credit"] = Field(description="debit takes from the wallet")
    amount: int
    phase: str = Field(
        description="posted; pending (a hold: the balance is unchanged until it is posted); "
        "post_pending (a hold posted)"
    )
    balance_after: int = Field(description="posted balance after this line, minor units")
    created_at: datetime


class StatementOut(BaseModel):
    object: Literal["list"] = "list"
    player_id: str
    currency: str
    data: list[StatementLineOut]
    next_cursor: str | None


async def _balance_out(session: AsyncSession, player_id: str, currency: str) -> BalanceOut:
    balance = await player_store.get_balance(session, player_id=player_id, currency=currency)
    return BalanceOut(
        currency=balance.currency, available=balance.available_minor, held=balance.held_minor
    )


async def _require_player(session: AsyncSession, player_id: str) -> None:
    if await player_store.get_player(session, player_id=player_id) is None:
        raise Problem(404, "player_not_found", f"No player {player_id!r}")


@router.post(
    "/{player_id}/game-transactions",
    status_code=201,
    responses=_PROBLEMS,  # type: ignore[arg-type]
    summary="Post a game bet, win or refund to the player's wallet",
)
async def create_game_transaction(
    player_id: str,
    body: GameTransactionCreate,
    settings: SettingsDep,
    state: StateDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> GameTransactionOut:
    if body.currency not in settings.currencies:
        raise Problem(
            422,
            "unsupported_currency",
            f"currency {body.currency!r} is not supported; "
            f"use one of {', '.join(sorted(settings.currencies))}",
        )
    spec = game_transaction(
        player_id=player_id,
        round_id=body.round_id,
        type=body.type,
        amount_minor=body.amount,
        currency=body.currency,
        shards=settings.ledger_house_shards,
    )
    request_hash = fingerprint(body, secret=settings.idempotency_secret.get_secret_value())
    scope = f"game-transactions:{player_id}"

    async def work(session: AsyncSession) -> ledger_store.PostedTransaction:
        if idempotency_key is not None:
            stored = await idempotency.claim(
                session, scope=scope, key=idempotency_key, request_hash=request_hash
            )
            if stored is not None:  # the posting is idempotent too: this returns the original
                return await ledger_store.post_transaction(session, spec=spec)
        await _require_player(session, player_id)
        if body.type == "refund":
            await _check_refund(session, player_id=player_id, body=body)
        posted = await ledger_store.post_transaction(session, spec=spec)
        if idempotency_key is not None:
            await idempotency.complete(
                session,
                scope=scope,
                key=idempotency_key,
                resource_id=str(posted.id),
                status_code=201,
            )
        return posted

    try:
        posted = await ledger_store.with_retry(state.sessions, work)
    except ledger_store.InsufficientFunds as exc:
        raise Problem(
            422, "insufficient_funds", f"The wallet's available balance is below {body.amount}"
        ) from exc
    except ledger_store.LedgerKeyConflict as exc:
        raise Problem(
            409,
            "game_transaction_conflict",
            f"A {body.type} for round {body.round_id!r} was already posted with other content",
        ) from exc
    async with state.sessions() as session:
        balance = await _balance_out(session, player_id, body.currency)
    return GameTransactionOut(
        player_id=player_id,
        type=body.type,
        round_id=body.round_id,
        amount=body.amount,
        currency=body.currency,
        transaction=LedgerTransactionOut(id=posted.id, key=posted.key, kind=spec.kind),
        balance=balance,
    )


async def _check_refund(
    session: AsyncSession, *, player_id: str, body: GameTransactionCreate
) -> None:
    """A refund gives back (part of) this player's bet in this round, never more."""
    bet = await ledger_store.load_spec(
        session,
        key=game_transaction(
            player_id=player_id,
            round_id=body.round_id,
            type="bet",
            amount_minor=1,
            currency=body.currency,
        ).key,
    )
    if bet is None:
        raise Problem(422, "no_bet_to_refund", f"No bet of this player in round {body.round_id!r}")
    if body.amount > bet.entries[0].amount_minor:
        raise Problem(
            422,
            "refund_exceeds_bet",
            f"The refund {body.amount} is more than the bet {bet.entries[0].amount_minor}",
        )


def _encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"e{entry_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not raw.startswith("e"):
            raise ValueError(raw)
        return int(raw[1:])
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Problem(400, "invalid_cursor", "cursor is not one this API returned") from exc


@router.get(
    "/{player_id}/statement",
    responses=_PROBLEMS,  # type: ignore[arg-type]
    summary="The wallet's ledger lines, oldest first, each with the balance after it",
)
async def get_statement(
    player_id: str,
    session: SessionDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    currency: Annotated[str, Query(min_length=3, max_length=3)] = "KZT",
) -> StatementOut:
    after = _decode_cursor(cursor) if cursor else None
    if currency not in settings.currencies:
        raise Problem(422, "unsupported_currency", f"currency {currency!r} is not supported")
    await _require_player(session, player_id)
    lines = await ledger_store.statement(
        session,
        account_code=player_wallet(player_id, currency).code,
        limit=limit + 1,
        after_entry_id=after,
    )
    page, more = lines[:limit], len(lines) > limit
    return StatementOut(
        player_id=player_id,
        currency=currency,
        data=[
            StatementLineOut(
                entry_id=line.entry_id,
                transaction=LedgerTransactionOut(
                    id=line.transaction_id, key=line.transaction_key, kind=line.kind
                ),
                side="debit" if line.side == "D" else "credit",
                amount=line.amount_minor,
                phase=line.phase,
                balance_after=line.balance_after_minor,
                created_at=line.created_at,
            )
            for line in page
        ],
        next_cursor=_encode_cursor(page[-1].entry_id) if more else None,
    )
