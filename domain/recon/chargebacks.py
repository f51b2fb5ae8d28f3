"""Chargebacks: the payer's bank takes a deposit's money back through the provider.

The provider takes the amount out of what it owes us (clearing is credited). We take it back
from the player who was credited: from the wallet as far as its available balance goes, and
whatever the wallet cannot cover becomes a receivable from the player, an asset, so the wallet's
no-overdraft flag never bends. A chargeback reversal (the dispute won) gives the money back the
other way round: first it pays off what the player still owes, then the rest goes to the wallet.

- chargeback, `chargeback:{provider}:{provider's id}`: Cr provider clearing / Dr player wallet
  (what it covers) / Dr player receivable (the rest);
- reversal, `chargeback:{provider}:{provider's id}:reversal`: Dr provider clearing / Cr player
  receivable (what is still owed) / Cr player wallet (the rest).

A chargeback the day's settlement already swept (a `chargeback` case: the report showed it
before anyone told us) takes the money from the provider's reconciliation-difference account
instead of clearing; its reversal gives it back there.

The split depends on the balances at the moment of posting, so the key alone does not fix the
content: the database layer records the chargeback once (by provider and the provider's id)
and posts under the same lock it read the balances with.
"""

from dataclasses import dataclass

from domain.ledger import (
    AccountRef,
    Entry,
    Side,
    TransactionSpec,
    player_receivable,
    player_wallet,
    provider_clearing,
    shard_for,
)


@dataclass(frozen=True)
class Split:
    """How much of an amount the wallet takes (or gets) and how much the receivable."""

    wallet_minor: int
    receivable_minor: int


def chargeback_key(provider: str, provider_chargeback_id: str) -> str:
    return f"chargeback:{provider}:{provider_chargeback_id}"


def split_chargeback(amount_minor: int, *, wallet_available_minor: int) -> Split:
    """The wallet pays what it can without going below zero; the player owes the rest."""
    wallet = min(amount_minor, max(wallet_available_minor, 0))
    return Split(wallet_minor=wallet, receivable_minor=amount_minor - wallet)


def split_reversal(amount_minor: int, *, receivable_outstanding_minor: int) -> Split:
    """What the player still owes is paid off first; the wallet gets the rest."""
    receivable = min(amount_minor, max(receivable_outstanding_minor, 0))
    return Split(wallet_minor=amount_minor - receivable, receivable_minor=receivable)


def chargeback_spec(
    *,
    provider: str,
    provider_chargeback_id: str,
    deposit_id: str | None,
    player_id: str,
    amount_minor: int,
    currency: str,
    split: Split,
    shards: int = 1,
    counter: AccountRef | None = None,
) -> TransactionSpec:
    """`counter`: where the provider took the money from, the provider's clearing (a chargeback
    entered or notified before the report) or, when the day's settlement already swept it into
    the reconciliation-difference account (a chargeback case), that account."""
    key = chargeback_key(provider, provider_chargeback_id)
    source = counter or provider_clearing(provider, currency, shard_for(key, shards))
    entries = [Entry(source, Side.CREDIT, amount_minor)]
    if split.wallet_minor:
        entries.append(Entry(player_wallet(player_id, currency), Side.DEBIT, split.wallet_minor))
    if split.receivable_minor:
        entries.append(
            Entry(player_receivable(player_id, currency), Side.DEBIT, split.receivable_minor)
        )
    return TransactionSpec(
        key=key, kind="chargeback", payment_id=deposit_id, entries=tuple(entries)
    )


def reversal_spec(
    *,
    provider: str,
    provider_chargeback_id: str,
    deposit_id: str | None,
    player_id: str,
    amount_minor: int,
    currency: str,
    split: Split,
    shards: int = 1,
    counter: AccountRef | None = None,
) -> TransactionSpec:
    """`counter` as for `chargeback_spec`: where the money came back to."""
    key = f"{chargeback_key(provider, provider_chargeback_id)}:reversal"
    source = counter or provider_clearing(provider, currency, shard_for(key, shards))
    entries = [Entry(source, Side.DEBIT, amount_minor)]
    if split.receivable_minor:
        entries.append(
            Entry(player_receivable(player_id, currency), Side.CREDIT, split.receivable_minor)
        )
    if split.wallet_minor:
        entries.append(Entry(player_wallet(player_id, currency), Side.CREDIT, split.wallet_minor))
    return TransactionSpec(
        key=key, kind="chargeback_reversal", payment_id=deposit_id, entries=tuple(entries)
    )
