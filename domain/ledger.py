"""Double-entry postings as data: which accounts move, in which direction, by how much.

Every transaction carries an idempotency key derived from business ids, and must balance per
currency before it may reach the database.
"""

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum


class Side(StrEnum):
    DEBIT = "D"
    CREDIT = "C"


class AccountType(StrEnum):
    PLAYER_WALLET = "player_wallet"  # liability: credits increase what we owe the player
    PROVIDER_CLEARING = "provider_clearing"  # asset: debits increase what the provider owes us


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


@dataclass(frozen=True)
class TransactionSpec:
    key: str
    kind: str
    payment_id: str | None
    entries: tuple[Entry, ...]

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

    @property
    def content_hash(self) -> str:
        """Same key with different content is a conflict; this is what 'content' means."""
        body = [
            [entry.account.code, entry.side.value, entry.amount_minor] for entry in self.entries
        ]
        canonical = json.dumps([self.kind, self.payment_id, body], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def player_wallet(player_id: str, currency: str) -> AccountRef:
    return AccountRef(
        code=f"player:{player_id}:wallet:{currency}",
        type=AccountType.PLAYER_WALLET,
        currency=currency,
        owner_id=player_id,
    )


def provider_clearing(provider: str, currency: str) -> AccountRef:
    return AccountRef(
        code=f"provider:{provider}:clearing:{currency}",
        type=AccountType.PROVIDER_CLEARING,
        currency=currency,
        owner_id=provider,
    )


def deposit_credit(
    *, deposit_id: str, player_id: str, provider: str, amount_minor: int, currency: str
) -> TransactionSpec:
    """A succeeded deposit: the provider owes us the money, we owe it to the player."""
    return TransactionSpec(
        key=f"deposit:{deposit_id}:credit",
        kind="deposit_credit",
        payment_id=deposit_id,
        entries=(
            Entry(provider_clearing(provider, currency), Side.DEBIT, amount_minor),
            Entry(player_wallet(player_id, currency), Side.CREDIT, amount_minor),
        ),
    )
