"""Chargebacks and their reversals, posted once per provider's chargeback id (migration 0120).

`record_chargeback` is what every source calls: the operator's manual entry
(`POST /v1/recon/chargebacks`), a provider's daily report line of kind `chargeback` (the
reconciliation engine), a provider's notification. It runs inside the caller's database
transaction; the ledger posting, the chargeback's row, the player's risk flag and the alert
commit together or not at all.

The wallet's share depends on its balance at the moment of posting, so the chargeback takes a
transaction-level advisory lock on its key (a second delivery waits, then finds the first) and
locks the player's accounts before it reads their balances; `ledger_post_try` then locks them
again in code order, which it already holds.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from db import ledger as ledger_store
from db import monitoring
from db.risk_flags import clear_flag, raise_flag
from domain.ids import derived_id
from domain.ledger import player_receivable, player_wallet, recon_difference
from domain.recon.chargebacks import (
    chargeback_key,
    chargeback_spec,
    reversal_spec,
    split_chargeback,
    split_reversal,
)

Source = Literal["manual", "report", "notification"]


class ChargebackRefused(Exception):
    """The chargeback cannot be taken as given; `code` is the API's problem code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ChargebackIn:
    provider: str
    provider_chargeback_id: str
    deposit_id: str | None  # our reference, as the provider reports it
    amount_minor: int
    currency: str
    source: Source
    actor: str  # who reported it: an operator key id, `recon:{run}`, `webhook:{provider}`
    reason: str | None = None
    business_date: date | None = None
    player_id: str | None = None  # only when the provider names no deposit of ours
    # The day's settlement already swept the money into the provider's reconciliation-difference
    # account (a chargeback case): take it from there instead of clearing.
    from_difference: bool = False


@dataclass(frozen=True)
class Chargeback:
    id: str
    provider: str
    provider_chargeback_id: str
    deposit_id: str | None
    player_id: str
    amount_minor: int
    currency: str
    reason: str | None
    source: str
    business_date: date | None
    wallet_minor: int
    receivable_minor: int
    transaction_key: str
    status: str
    reversal_amount_minor: int | None
    reversal_wallet_minor: int | None
    reversal_receivable_minor: int | None
    reversal_transaction_key: str | None
    reversed_at: datetime | None
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Recorded:
    chargeback: Chargeback
    created: bool  # False: this chargeback (or reversal) was recorded before


_COLUMNS = (
    "id, provider, provider_chargeback_id, deposit_id, player_id, amount_minor, currency, "
    "reason, source, business_date, wallet_minor, receivable_minor, transaction_key, status, "
    "reversal_amount_minor, reversal_wallet_minor, reversal_receivable_minor, "
    "reversal_transaction_key, reversed_at, created_by, created_at"
)


async def get_chargeback(
    session: AsyncSession, *, provider: str, provider_chargeback_id: str
) -> Chargeback | None:
    row = (
        await session.execute(
            text(
                f"SELECT {_COLUMNS} FROM chargebacks "  # noqa: S608 - constant columns
                "WHERE provider = :provider AND provider_chargeback_id = :id"
            ),
            {"provider": provider, "id": provider_chargeback_id},
        )
    ).one_or_none()
    return None if row is None else Chargeback(**row._asdict())


async def get_by_id(session: AsyncSession, *, chargeback_id: str) -> Chargeback | None:
    row = (
        await session.execute(
            text(f"SELECT {_COLUMNS} FROM chargebacks WHERE id = :id"),  # noqa: S608
            {"id": chargeback_id},
        )
    ).one_or_none()
    return None if row is None else Chargeback(**row._asdict())


async def list_for_player(session: AsyncSession, *, player_id: str) -> list[Chargeback]:
    rows = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM chargebacks WHERE player_id = :player "  # noqa: S608
            "ORDER BY created_at, id"
        ),
        {"player": player_id},
    )
    return [Chargeback(**row._asdict()) for row in rows]


async def latest_for_deposit(
    session: AsyncSession, *, provider: str, deposit_id: str
) -> Chargeback | None:
    """The deposit's latest chargeback not reversed yet: what a reversal naming only the
    deposit gives back."""
    row = (
        await session.execute(
            text(
                f"SELECT {_COLUMNS} FROM chargebacks "  # noqa: S608 - constant columns
                "WHERE provider = :provider AND deposit_id = :deposit "
                "AND status = 'charged_back' ORDER BY created_at DESC, id DESC LIMIT 1"
            ),
            {"provider": provider, "deposit": deposit_id},
        )
    ).one_or_none()
    return None if row is None else Chargeback(**row._asdict())


async def _lock_key(session: AsyncSession, key: str) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


async def _balances(session: AsyncSession, codes: list[str]) -> dict[str, dict[str, int]]:
    """The accounts' counters, locked (in code order, as ledger_post_try locks them)."""
    rows = await session.execute(
        text(
            "SELECT code, posted_debits, posted_credits, pending_debits FROM ledger_accounts "
            "WHERE code = ANY(:codes) ORDER BY code FOR UPDATE"
        ),
        {"codes": codes},
    )
    return {
        row.code: {
            "posted_debits": int(row.posted_debits),
            "posted_credits": int(row.posted_credits),
            "pending_debits": int(row.pending_debits),
        }
        for row in rows
    }


def _wallet_available(counters: dict[str, int] | None) -> int:
    """What the no-overdraft flag lets a debit take: posted credits minus posted and held debits."""
    if counters is None:
        return 0
    return counters["posted_credits"] - counters["posted_debits"] - counters["pending_debits"]


def _receivable_outstanding(counters: dict[str, int] | None) -> int:
    if counters is None:
        return 0
    return counters["posted_debits"] - counters["posted_credits"]


async def _deposit(session: AsyncSession, deposit_id: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text(
                "SELECT d.id, d.player_id, d.provider, d.amount_minor, d.currency, "
                "EXISTS (SELECT 1 FROM ledger_transactions t "
                "        WHERE t.key = 'deposit:' || d.id || '\\:credit') AS credited "
                "FROM deposits d WHERE d.id = :id"
            ),
            {"id": deposit_id},
        )
    ).one_or_none()
    return None if row is None else row._asdict()


async def _charged_back(session: AsyncSession, deposit_id: str) -> int:
    """What earlier chargebacks of the deposit took and did not give back."""
    total = await session.scalar(
        text(
            "SELECT coalesce(sum(amount_minor - coalesce(reversal_amount_minor, 0)), 0) "
            "FROM chargebacks WHERE deposit_id = :id"
        ),
        {"id": deposit_id},
    )
    return int(total or 0)


async def _player_exists(session: AsyncSession, player_id: str) -> bool:
    found = await session.scalar(text("SELECT 1 FROM players WHERE id = :id"), {"id": player_id})
    return found is not None


async def record_chargeback(
    session: AsyncSession, inp: ChargebackIn, *, shards: int, now: datetime
) -> Recorded:
    """Take a chargeback once: debit what the wallet covers, make the rest a receivable from
    the player, flag the player for risk and raise an alert. The same provider's id again
    returns the first record (ChargebackRefused `chargeback_conflict` if it differs)."""
    key = chargeback_key(inp.provider, inp.provider_chargeback_id)
    await _lock_key(session, key)
    existing = await get_chargeback(
        session, provider=inp.provider, provider_chargeback_id=inp.provider_chargeback_id
    )
    if existing is not None:
        same = (existing.amount_minor, existing.currency, existing.deposit_id) == (
            inp.amount_minor,
            inp.currency,
            inp.deposit_id,
        )
        if not same:
            raise ChargebackRefused(
                "chargeback_conflict",
                f"{inp.provider} chargeback {inp.provider_chargeback_id} was recorded with "
                f"another deposit, amount or currency ({existing.id})",
            )
        return Recorded(existing, created=False)

    player_id = await _payer(session, inp)
    wallet = player_wallet(player_id, inp.currency)
    receivable = player_receivable(player_id, inp.currency)
    counters = await _balances(session, [wallet.code, receivable.code])
    split = split_chargeback(
        inp.amount_minor, wallet_available_minor=_wallet_available(counters.get(wallet.code))
    )
    spec = chargeback_spec(
        provider=inp.provider,
        provider_chargeback_id=inp.provider_chargeback_id,
        deposit_id=inp.deposit_id,
        player_id=player_id,
        amount_minor=inp.amount_minor,
        currency=inp.currency,
        split=split,
        shards=shards,
        counter=recon_difference(inp.provider, inp.currency) if inp.from_difference else None,
    )
    await ledger_store.post_transaction(session, spec=spec)
    chargeback_id = derived_id("cb", inp.provider, inp.provider_chargeback_id)
    await session.execute(
        text(
            "INSERT INTO chargebacks (id, provider, provider_chargeback_id, deposit_id, "
            "player_id, amount_minor, currency, reason, source, business_date, wallet_minor, "
            "receivable_minor, transaction_key, created_by, created_at) VALUES (:id, :provider, "
            ":pid, :deposit, :player, :amount, :currency, :reason, :source, :business_date, "
            ":wallet, :receivable, :key, :actor, :now)"
        ),
        {
            "id": chargeback_id,
            "provider": inp.provider,
            "pid": inp.provider_chargeback_id,
            "deposit": inp.deposit_id,
            "player": player_id,
            "amount": inp.amount_minor,
            "currency": inp.currency,
            "reason": inp.reason,
            "source": inp.source,
            "business_date": inp.business_date,
            "wallet": split.wallet_minor,
            "receivable": split.receivable_minor,
            "key": spec.key,
            "actor": inp.actor,
            "now": now,
        },
    )
    details = {
        "chargeback_id": chargeback_id,
        "provider": inp.provider,
        "provider_chargeback_id": inp.provider_chargeback_id,
        "deposit_id": inp.deposit_id,
        "amount_minor": inp.amount_minor,
        "currency": inp.currency,
        "wallet_minor": split.wallet_minor,
        "receivable_minor": split.receivable_minor,
    }
    await raise_flag(
        session,
        player_id=player_id,
        kind="chargeback",
        source_ref=chargeback_id,
        reason=(inp.reason or "chargeback")[:200],
        details=details,
        now=now,
    )
    owes = (
        f"; the player owes {split.receivable_minor} {inp.currency}"
        if split.receivable_minor
        else ""
    )
    await monitoring.raise_alert(
        session,
        dedupe_key=f"chargeback:{chargeback_id}",
        kind="chargeback",
        severity="critical" if split.receivable_minor else "high",
        subject=f"player:{player_id}",
        message=(
            f"{inp.provider} charged back {inp.amount_minor} {inp.currency} of "
            f"{inp.deposit_id or 'a payment'} ({inp.provider_chargeback_id}){owes}"
        )[:500],
        details=details,
    )
    recorded = await get_by_id(session, chargeback_id=chargeback_id)
    assert recorded is not None
    return Recorded(recorded, created=True)


async def _payer(session: AsyncSession, inp: ChargebackIn) -> str:
    """The player the chargeback's deposit credited, after checking it could be charged back."""
    if inp.deposit_id is None:
        if inp.player_id is None or not await _player_exists(session, inp.player_id):
            raise ChargebackRefused(
                "deposit_not_found", "a chargeback names the deposit (or the player) it takes"
            )
        return inp.player_id
    deposit = await _deposit(session, inp.deposit_id)
    if deposit is None:
        raise ChargebackRefused("deposit_not_found", f"no deposit {inp.deposit_id!r}")
    if inp.player_id is not None and inp.player_id != deposit["player_id"]:
        raise ChargebackRefused("player_mismatch", "the deposit is another player's")
    if deposit["provider"] != inp.provider:
        raise ChargebackRefused(
            "provider_mismatch", f"deposit {inp.deposit_id} was taken by {deposit['provider']}"
        )
    if deposit["currency"] != inp.currency:
        raise ChargebackRefused(
            "currency_mismatch", f"deposit {inp.deposit_id} is in {deposit['currency']}"
        )
    if not deposit["credited"]:
        raise ChargebackRefused(
            "deposit_not_credited",
            f"deposit {inp.deposit_id} was never credited: there is nothing to take back "
            "(reconcile it as a case)",
        )
    left = int(deposit["amount_minor"]) - await _charged_back(session, inp.deposit_id)
    if inp.amount_minor > left:
        raise ChargebackRefused(
            "chargeback_exceeds_deposit",
            f"{left} {inp.currency} of deposit {inp.deposit_id} is left to charge back",
        )
    return str(deposit["player_id"])


async def record_reversal(
    session: AsyncSession,
    *,
    provider: str,
    provider_chargeback_id: str,
    amount_minor: int | None,
    actor: str,
    shards: int,
    now: datetime,
    from_difference: bool = False,
) -> Recorded:
    """The chargeback won back (in full, or `amount_minor` of it): pay off what the player
    still owes, credit the rest to the wallet, clear the risk flag. Once per chargeback."""
    key = chargeback_key(provider, provider_chargeback_id)
    await _lock_key(session, key)
    chargeback = await get_chargeback(
        session, provider=provider, provider_chargeback_id=provider_chargeback_id
    )
    if chargeback is None:
        raise ChargebackRefused(
            "chargeback_not_found", f"no {provider} chargeback {provider_chargeback_id!r}"
        )
    amount = chargeback.amount_minor if amount_minor is None else amount_minor
    if chargeback.status == "reversed":
        if amount != chargeback.reversal_amount_minor:
            raise ChargebackRefused(
                "chargeback_conflict",
                f"the chargeback was reversed for {chargeback.reversal_amount_minor} "
                f"{chargeback.currency}",
            )
        return Recorded(chargeback, created=False)
    if not 0 < amount <= chargeback.amount_minor:
        raise ChargebackRefused(
            "invalid_amount", f"a reversal gives back 1 to {chargeback.amount_minor}"
        )
    wallet = player_wallet(chargeback.player_id, chargeback.currency)
    receivable = player_receivable(chargeback.player_id, chargeback.currency)
    counters = await _balances(session, [wallet.code, receivable.code])
    split = split_reversal(
        amount, receivable_outstanding_minor=_receivable_outstanding(counters.get(receivable.code))
    )
    spec = reversal_spec(
        provider=provider,
        provider_chargeback_id=provider_chargeback_id,
        deposit_id=chargeback.deposit_id,
        player_id=chargeback.player_id,
        amount_minor=amount,
        currency=chargeback.currency,
        split=split,
        shards=shards,
        counter=recon_difference(provider, chargeback.currency) if from_difference else None,
    )
    await ledger_store.post_transaction(session, spec=spec)
    await session.execute(
        text(
            "UPDATE chargebacks SET status = 'reversed', reversal_amount_minor = :amount, "
            "reversal_wallet_minor = :wallet, reversal_receivable_minor = :receivable, "
            "reversal_transaction_key = :key, reversed_at = :now WHERE id = :id"
        ),
        {
            "amount": amount,
            "wallet": split.wallet_minor,
            "receivable": split.receivable_minor,
            "key": spec.key,
            "now": now,
            "id": chargeback.id,
        },
    )
    await clear_flag(
        session,
        player_id=chargeback.player_id,
        kind="chargeback",
        source_ref=chargeback.id,
        reason=f"chargeback reversed by {actor}"[:200],
        now=now,
    )
    reversed_ = await get_by_id(session, chargeback_id=chargeback.id)
    assert reversed_ is not None
    return Recorded(reversed_, created=True)
