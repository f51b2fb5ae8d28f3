"""Settlement and case-resolution postings of the reconciliation, as data (domain/ledger.py).

A reconciled day settles in one transaction, keyed by provider, business day and report hash:
the day's clearing balance (every shard) is swept to zero and split three ways:
- the net the provider settled goes to the operator's bank account;
- the fees it actually kept minus the fees we booked per deposit go to fee expense (so fee
  expense ends at the actual fees);
- the rest — what matching could not explain — goes to the provider's reconciliation-difference
  account, where each part is explained by an open case until a resolution moves it out.

A corrected report supersedes the day: the earlier settlement is reversed (`{key}:reversal`,
domain.ledger.reversal) and the new one sweeps what is then left.

Resolutions (the "cases" part posts them; each under a key of the case):
- `case_credit_deposit`: the money a provider or the bank took for a deposit we never credited
  reaches the player through the deposit's own credit (and fee) postings, exactly the ones the
  deposit and late-payment workflows would post, so money moves once whoever gets there first;
  the clearing this leaves is moved against the difference account (`recon:case:{id}:credit`);
- `case_assign_to_player`: an unknown transfer credited to the player an operator names.
(Returns to the sender, refunds and chargebacks: domain/recon/cases.py, chargebacks.py.)
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from domain.ledger import (
    AccountRef,
    Entry,
    Side,
    TransactionSpec,
    deposit_credit,
    deposit_fee,
    operator_bank,
    player_wallet,
    provider_clearing,
    provider_fee_expense,
    recon_difference,
    shard_for,
)

SETTLEMENT_KIND = "recon_settlement"


def settlement_key(provider: str, business_date: date, report_hash: str) -> str:
    return f"recon:{provider}:{business_date.isoformat()}:{report_hash}:settlement"


@dataclass(frozen=True)
class SettlementFigures:
    """How a day's clearing balance was split. clearing = settled + fee_delta + difference."""

    clearing_minor: int  # the day's clearing balance (debits minus credits) swept to zero
    settled_minor: int  # to the operator's bank account (negative: the operator pays)
    fee_delta_minor: int  # actual fees minus booked fees, to fee expense
    difference_minor: int  # left unexplained, to the reconciliation-difference account


def split(clearing_minor: int, *, settled_minor: int, fee_delta_minor: int) -> SettlementFigures:
    return SettlementFigures(
        clearing_minor=clearing_minor,
        settled_minor=settled_minor,
        fee_delta_minor=fee_delta_minor,
        difference_minor=clearing_minor - settled_minor - fee_delta_minor,
    )


def _entry(account: AccountRef, debit_amount: int) -> Entry | None:
    """A debit of `debit_amount` (a credit when negative); nothing for zero."""
    if debit_amount == 0:
        return None
    side = Side.DEBIT if debit_amount > 0 else Side.CREDIT
    return Entry(account, side, abs(debit_amount))


def day_settlement(
    *,
    provider: str,
    business_date: date,
    report_hash: str,
    currency: str,
    clearing_by_shard: Mapping[int, int],
    settled_minor: int,
    fee_delta_minor: int,
) -> tuple[TransactionSpec | None, SettlementFigures]:
    """The day's settlement (None when every figure is zero) and its figures.

    `clearing_by_shard`: the day's balance (debits minus credits) of each clearing shard."""
    figures = split(
        sum(clearing_by_shard.values()),
        settled_minor=settled_minor,
        fee_delta_minor=fee_delta_minor,
    )
    key = settlement_key(provider, business_date, report_hash)
    entries = [
        _entry(provider_clearing(provider, currency, shard), -balance)
        for shard, balance in sorted(clearing_by_shard.items())
    ]
    entries += [
        _entry(operator_bank(currency), figures.settled_minor),
        _entry(provider_fee_expense(provider, currency, 0), figures.fee_delta_minor),
        _entry(recon_difference(provider, currency), figures.difference_minor),
    ]
    present = tuple(e for e in entries if e is not None)
    if not present:
        return None, figures
    spec = TransactionSpec(key=key, kind=SETTLEMENT_KIND, payment_id=None, entries=present)
    return spec, figures


# -- case resolutions -----------------------------------------------------------------------


def case_key(case_id: int, action: str) -> str:
    return f"recon:case:{case_id}:{action}"


def case_credit_deposit(
    *,
    case_id: int,
    deposit_id: str,
    player_id: str,
    provider: str,
    amount_minor: int,
    currency: str,
    expected_fee_minor: int,
    shards: int,
) -> list[TransactionSpec]:
    """Credit the player what was actually paid for `deposit_id`, once.

    The first two are the deposit's own postings (`deposit:{id}:credit`, `deposit:{id}:fee`),
    with the content activities/deposits.py `credit_deposit` gives them for this amount: if the
    deposit or late-payment workflow credits it too, the ledger sees the same key and content
    and moves nothing twice. The third (`recon:case:{id}:credit`) clears what they leave in the
    clearing account against the difference account, where the settlement put the money; the
    fee the settlement already booked at its actual figure is taken back off fee expense."""
    credit = deposit_credit(
        deposit_id=deposit_id,
        player_id=player_id,
        provider=provider,
        amount_minor=amount_minor,
        currency=currency,
        shards=shards,
    )
    specs = [credit]
    if expected_fee_minor:
        specs.append(
            deposit_fee(
                deposit_id=deposit_id,
                provider=provider,
                fee_minor=expected_fee_minor,
                currency=currency,
                shards=shards,
            )
        )
    key = case_key(case_id, "credit")
    shard = shard_for(key, shards)
    entries = [
        _entry(recon_difference(provider, currency), amount_minor),
        _entry(provider_clearing(provider, currency, shard), -(amount_minor - expected_fee_minor)),
        _entry(provider_fee_expense(provider, currency, shard), -expected_fee_minor),
    ]
    specs.append(
        TransactionSpec(
            key=key,
            kind="recon_case_credit",
            payment_id=deposit_id,
            entries=tuple(e for e in entries if e is not None),
        )
    )
    return specs


def case_assign_to_player(
    *, case_id: int, provider: str, player_id: str, amount_minor: int, currency: str
) -> TransactionSpec:
    """An unknown transfer an operator attributes to a player: credited to the wallet."""
    return TransactionSpec(
        key=case_key(case_id, "assign"),
        kind="recon_case_assign",
        payment_id=None,
        entries=(
            Entry(recon_difference(provider, currency), Side.DEBIT, amount_minor),
            Entry(player_wallet(player_id, currency), Side.CREDIT, amount_minor),
        ),
    )
