"""Double-entry postings as data: which accounts move, in which direction, by how much.

Every transaction carries an idempotency key derived from business ids and must balance per
currency before it may reach the database. Busy house accounts (provider clearing, fee expense,
game revenue) are split into shards chosen from the transaction key, so concurrent postings do
not queue on one row lock; a house account's balance is the sum of its shards.

The chart of accounts and every posting the product makes:

| event | key | entries |
| --- | --- | --- |
| deposit succeeded | `deposit:{id}:credit` | Dr provider clearing / Cr player wallet |
| provider fee on a deposit | `deposit:{id}:fee` | Dr provider fee expense / Cr provider clearing |
| withdrawal requested | `wd:{id}:hold` | pending: Dr player wallet / Cr provider clearing |
| withdrawal approved | (none: the hold stays) | |
| withdrawal paid | `wd:{id}:post` | posts the pending hold |
| withdrawal failed, rejected, cancelled | `wd:{id}:void` | voids the pending hold |
| withdrawal fee | `wd:{id}:fee` | Dr player wallet / Cr fee revenue |
| game bet | `game:{player}:{round}:bet` | Dr player wallet / Cr game revenue |
| game win | `game:{player}:{round}:win` | Dr game revenue / Cr player wallet |
| game refund | `game:{player}:{round}:refund` | Dr game revenue / Cr player wallet |
| wallet API bet | `wallet:{merchant}:{transaction id}` | Dr player wallet / Cr game revenue |
| wallet API win | `wallet:{merchant}:{transaction id}` | Dr game revenue / Cr player wallet |
| wallet API rollback | `wallet:{merchant}:{bet transaction id}:reversal` | the bet's reversal |
| provider settles | `settlement:{provider}:{batch}` | Dr provider settlement / Cr clearing |
| day reconciled | `recon:{provider}:{day}:{hash}:settlement` | Cr the day's clearing / Dr bank |
| case resolved | `recon:case:{id}:{action}` | out of the recon difference: domain/recon/cases.py |
| chargeback | `chargeback:{provider}:{id}` | Cr clearing / Dr wallet, receivable: recon/ |
| correction | `{key}:reversal` | the original's entries, sides swapped |

A reconciled day's clearing goes to the operator's bank (the net), fee expense (actual less
booked fees) and the reconciliation-difference account (the rest): domain/recon/postings.py.
"""

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Side(StrEnum):
    DEBIT = "D"
    CREDIT = "C"

    @property
    def opposite(self) -> "Side":
        return Side.CREDIT if self is Side.DEBIT else Side.DEBIT


class AccountType(StrEnum):
    PLAYER_WALLET = "player_wallet"  # liability: what we owe the player
    PROVIDER_CLEARING = "provider_clearing"  # asset: what the provider owes us, not yet settled
    PROVIDER_SETTLEMENT = "provider_settlement"  # asset: money the provider has paid out to us
    PROVIDER_FEE_EXPENSE = "provider_fee_expense"  # expense: provider fees
    FEE_REVENUE = "fee_revenue"  # revenue: fees we charge players
    GAME_REVENUE = "game_revenue"  # revenue: bets minus wins and refunds
    # asset: what a player owes us (a chargeback the wallet could not cover); the wallet's
    # no-overdraft flag stays as it is
    PLAYER_RECEIVABLE = "player_receivable"
    # asset: the operator's own bank account, where providers settle and transfers land
    OPERATOR_BANK = "operator_bank"
    # suspense per provider: what a reconciliation could not match (explained by its cases)
    RECON_DIFFERENCE = "recon_difference"
    # income or expense: reconciliation differences an operator wrote off (recon/cases.py)
    RECON_WRITE_OFF = "recon_write_off"


class UnbalancedTransaction(ValueError):
    """Debits and credits differ: a programming error, never retried."""


@dataclass(frozen=True)
class AccountRef:
    code: str
    type: AccountType
    currency: str
    owner_id: str | None = None

    @property
    def debits_must_not_exceed_credits(self) -> bool:
        return self.type is AccountType.PLAYER_WALLET


@dataclass(frozen=True)
class Entry:
    account: AccountRef
    side: Side
    amount_minor: int


Phase = Literal["posted", "pending"]


@dataclass(frozen=True)
class TransactionSpec:
    key: str
    kind: str
    payment_id: str | None
    entries: tuple[Entry, ...]
    phase: Phase = "posted"

    def __post_init__(self) -> None:
        if not self.entries:
            raise UnbalancedTransaction("a transaction needs entries")
        totals: dict[str, int] = {}
        for entry in self.entries:
            if entry.amount_minor <= 0:
                raise UnbalancedTransaction("entry amounts must be positive minor units")
            sign = 1 if entry.side is Side.DEBIT else -1
            currency = entry.account.currency
            totals[currency] = totals.get(currency, 0) + sign * entry.amount_minor
        if any(totals.values()):
            raise UnbalancedTransaction(f"transaction {self.key} does not balance: {totals}")
        if self.phase == "pending" and len(self.entries) != 2:
            raise UnbalancedTransaction("a pending transfer moves one amount between two accounts")

    @property
    def content_hash(self) -> str:
        """Same key with different content is a conflict; this is what 'content' means."""
        body = [[e.account.code, e.side.value, e.amount_minor] for e in self.entries]
        return _digest([self.kind, self.payment_id, self.phase, body])


@dataclass(frozen=True)
class PendingResolution:
    """Post (fully or partly) or void a pending transfer, exactly once."""

    key: str
    kind: str
    payment_id: str | None
    pending_key: str
    action: Literal["post", "void"]
    amount_minor: int | None = None  # post only; None posts the full pending amount

    @property
    def content_hash(self) -> str:
        return _digest(
            [self.kind, self.payment_id, self.pending_key, self.action, self.amount_minor]
        )


@dataclass(frozen=True)
class LedgerPolicy:
    """How many shards each house account has, and what each provider charges (basis points)."""

    house_shards: int = 8
    provider_fee_bps: tuple[tuple[str, int], ...] = ()

    def fee_bps(self, provider: str) -> int:
        return dict(self.provider_fee_bps).get(provider, 0)


def _digest(content: object) -> str:
    canonical = json.dumps(content, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def shard_for(key: str, shards: int) -> int:
    """A stable shard for a transaction key, so a retried posting hits the same rows."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % max(shards, 1)


# -- accounts -------------------------------------------------------------------------------


def player_wallet(player_id: str, currency: str) -> AccountRef:
    return AccountRef(
        f"player:{player_id}:wallet:{currency}", AccountType.PLAYER_WALLET, currency, player_id
    )


def player_receivable(player_id: str, currency: str) -> AccountRef:
    """What the player owes us: a chargeback beyond the wallet's balance (recon/chargebacks)."""
    return AccountRef(
        f"player:{player_id}:receivable:{currency}",
        AccountType.PLAYER_RECEIVABLE,
        currency,
        player_id,
    )


def _house(kind: AccountType, owner: str, currency: str, shard: int | None) -> AccountRef:
    suffix = "" if shard is None else f":{shard:02d}"
    return AccountRef(f"{owner}:{kind.value}:{currency}{suffix}", kind, currency, owner)


def provider_clearing(provider: str, currency: str, shard: int = 0) -> AccountRef:
    return _house(AccountType.PROVIDER_CLEARING, f"provider:{provider}", currency, shard)


def provider_settlement(provider: str, currency: str) -> AccountRef:
    return _house(AccountType.PROVIDER_SETTLEMENT, f"provider:{provider}", currency, None)


def provider_fee_expense(provider: str, currency: str, shard: int = 0) -> AccountRef:
    return _house(AccountType.PROVIDER_FEE_EXPENSE, f"provider:{provider}", currency, shard)


def operator_bank(currency: str) -> AccountRef:
    """The operator's account at its bank: provider settlements and bank transfers land here."""
    return _house(AccountType.OPERATOR_BANK, "house", currency, None)


def recon_difference(provider: str, currency: str) -> AccountRef:
    """What reconciling this provider left unexplained by a match (domain/recon/postings.py)."""
    return _house(AccountType.RECON_DIFFERENCE, f"provider:{provider}", currency, None)


def recon_write_off(currency: str) -> AccountRef:
    """Differences nobody will pay or be paid: written off out of the difference accounts."""
    return _house(AccountType.RECON_WRITE_OFF, "house", currency, None)


def fee_revenue(currency: str, shard: int = 0) -> AccountRef:
    return _house(AccountType.FEE_REVENUE, "house", currency, shard)


def game_revenue(currency: str, shard: int = 0) -> AccountRef:
    return _house(AccountType.GAME_REVENUE, "house", currency, shard)


# -- postings -------------------------------------------------------------------------------


def _transfer(
    *,
    key: str,
    kind: str,
    payment_id: str | None,
    debit: AccountRef,
    credit: AccountRef,
    amount_minor: int,
    phase: Phase = "posted",
) -> TransactionSpec:
    return TransactionSpec(
        key=key,
        kind=kind,
        payment_id=payment_id,
        entries=(Entry(debit, Side.DEBIT, amount_minor), Entry(credit, Side.CREDIT, amount_minor)),
        phase=phase,
    )


def deposit_credit(
    *,
    deposit_id: str,
    player_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    shards: int = 1,
) -> TransactionSpec:
    """A succeeded deposit: the provider owes us the money, we owe it to the player."""
    key = f"deposit:{deposit_id}:credit"
    return _transfer(
        key=key,
        kind="deposit_credit",
        payment_id=deposit_id,
        debit=provider_clearing(provider, currency, shard_for(key, shards)),
        credit=player_wallet(player_id, currency),
        amount_minor=amount_minor,
    )


def deposit_fee(
    *, deposit_id: str, provider: str, fee_minor: int, currency: str, shards: int = 1
) -> TransactionSpec:
    """The provider keeps its fee out of what it owes us."""
    key = f"deposit:{deposit_id}:fee"
    shard = shard_for(key, shards)
    return _transfer(
        key=key,
        kind="deposit_fee",
        payment_id=deposit_id,
        debit=provider_fee_expense(provider, currency, shard),
        credit=provider_clearing(provider, currency, shard),
        amount_minor=fee_minor,
    )


def fee_for(amount_minor: int, basis_points: int) -> int:
    """Fee in whole minor units, rounded half up; integer arithmetic only."""
    return (amount_minor * basis_points + 5_000) // 10_000


def withdrawal_hold(
    *,
    withdrawal_id: str,
    player_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    shards: int = 1,
) -> TransactionSpec:
    """Reserve the amount on the player's wallet until the payout is paid or released."""
    key = f"wd:{withdrawal_id}:hold"
    return _transfer(
        key=key,
        kind="withdrawal_hold",
        payment_id=withdrawal_id,
        debit=player_wallet(player_id, currency),
        credit=provider_clearing(provider, currency, shard_for(key, shards)),
        amount_minor=amount_minor,
        phase="pending",
    )


def withdrawal_post(*, withdrawal_id: str) -> PendingResolution:
    return PendingResolution(
        key=f"wd:{withdrawal_id}:post",
        kind="withdrawal_paid",
        payment_id=withdrawal_id,
        pending_key=f"wd:{withdrawal_id}:hold",
        action="post",
    )


def withdrawal_void(*, withdrawal_id: str) -> PendingResolution:
    return PendingResolution(
        key=f"wd:{withdrawal_id}:void",
        kind="withdrawal_released",
        payment_id=withdrawal_id,
        pending_key=f"wd:{withdrawal_id}:hold",
        action="void",
    )


GameType = Literal["bet", "win", "refund"]


def game_transaction(
    *,
    player_id: str,
    round_id: str,
    type: GameType,
    amount_minor: int,
    currency: str,
    shards: int = 1,
) -> TransactionSpec:
    # Several players share a round (live games): the key is the player's part of the round.
    key = f"game:{player_id}:{round_id}:{type}"
    wallet = player_wallet(player_id, currency)
    house = game_revenue(currency, shard_for(key, shards))
    debit, credit = (wallet, house) if type == "bet" else (house, wallet)
    return _transfer(
        key=key,
        kind=f"game_{type}",
        payment_id=None,
        debit=debit,
        credit=credit,
        amount_minor=amount_minor,
    )


WalletType = Literal["bet", "win"]


def wallet_key(merchant_id: str, transaction_id: str) -> str:
    """The ledger key of a wallet API operation: the game platform's own transaction id, which
    is unique per platform (merchant), so a replay of it is the same posting."""
    return f"wallet:{merchant_id}:{transaction_id}"


def wallet_transaction(
    *,
    merchant_id: str,
    transaction_id: str,
    player_id: str,
    type: WalletType,
    amount_minor: int,
    currency: str,
    shards: int = 1,
) -> TransactionSpec:
    """A bet or win of the wallet API (api/routers/wallet.py); its rollback is `reversal`."""
    key = wallet_key(merchant_id, transaction_id)
    wallet = player_wallet(player_id, currency)
    house = game_revenue(currency, shard_for(key, shards))
    debit, credit = (wallet, house) if type == "bet" else (house, wallet)
    return _transfer(
        key=key,
        kind=f"game_{type}",
        payment_id=None,
        debit=debit,
        credit=credit,
        amount_minor=amount_minor,
    )


def settlement(
    *,
    provider: str,
    batch_id: str,
    currency: str,
    shard_balances: dict[int, int],
) -> TransactionSpec | None:
    """Move each clearing shard's net balance (debits minus credits) to the settlement account."""
    settle = provider_settlement(provider, currency)
    entries: list[Entry] = []
    for shard, balance in sorted(shard_balances.items()):
        if balance == 0:
            continue
        clearing = provider_clearing(provider, currency, shard)
        side = Side.CREDIT if balance > 0 else Side.DEBIT
        entries += [Entry(clearing, side, abs(balance)), Entry(settle, side.opposite, abs(balance))]
    if not entries:
        return None
    return TransactionSpec(
        key=f"settlement:{provider}:{batch_id}",
        kind="provider_settlement",
        payment_id=None,
        entries=tuple(entries),
    )


def reversal(original: TransactionSpec) -> TransactionSpec:
    """A correction: the same entries with sides swapped, never an edit of the original."""
    return TransactionSpec(
        key=f"{original.key}:reversal",
        kind=f"{original.kind}_reversal",
        payment_id=original.payment_id,
        entries=tuple(Entry(e.account, e.side.opposite, e.amount_minor) for e in original.entries),
    )


def refund_hold(
    *,
    refund_id: str,
    deposit_id: str,
    player_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    shards: int = 1,
) -> TransactionSpec:
    """Take the refunded amount back from the player's wallet until the provider confirms the
    refund (posted) or refuses it (released)."""
    key = f"refund:{refund_id}:hold"
    return _transfer(
        key=key,
        kind="refund_hold",
        payment_id=deposit_id,
        debit=player_wallet(player_id, currency),
        credit=provider_clearing(provider, currency, shard_for(key, shards)),
        amount_minor=amount_minor,
        phase="pending",
    )


def refund_resolution(
    *, refund_id: str, deposit_id: str, action: Literal["post", "void"]
) -> PendingResolution:
    """`post`: the provider refunded; `void`: it refused, the player keeps the money."""
    return PendingResolution(
        key=f"refund:{refund_id}:{action}",
        kind="refund_paid" if action == "post" else "refund_released",
        payment_id=deposit_id,
        pending_key=f"refund:{refund_id}:hold",
        action=action,
    )
