"""Reconciliation cases: which resolutions fit which discrepancy, and the postings they make.

A case is money the reconciliation could not explain (migration 0110, `recon_cases`). The day's
settlement (domain/recon/postings.py) sweeps the provider's clearing to zero and parks what no
match explains in the provider's reconciliation-difference account, so while a case is open its
money waits there: as a credit when the provider or the bank received money we never booked
(`held_minor` > 0), as a debit when we booked money that never came or that went out without
us (`held_minor` < 0). A resolution moves it out, so that the difference account is explained
by the cases still open:

- credit_player (money received): a deposit we never credited gets its own credit and fee
  postings plus `recon:case:{id}:credit` (postings.case_credit_deposit), so that the deposit
  or late-payment workflow crediting it too moves nothing twice; money beyond a credited
  deposit: Dr difference / Cr the payer's wallet. For a chargeback reversal: Dr difference /
  Cr the player's receivable (what is still owed) / Cr the wallet (recon/chargebacks.py).
- assign_player (money received): Dr difference / Cr the wallet of the player the operator
  names (postings.case_assign_to_player).
- refund (money received): pending Dr difference / Cr provider clearing (`refund:{id}:hold`),
  posted by RefundWorkflow when the provider refunds, released when it refuses.
- return_to_sender (money received): pending Dr difference / Cr the bank's clearing
  (`recon:case:{id}:return:hold`), posted when the bank has paid it back.
- charge_player (a chargeback): Dr wallet (what it covers) / Dr receivable (the rest) /
  Cr difference (recon/chargebacks.py).
- write_off (either way): between the difference account and the write-off account
  (`recon:case:{id}:write_off`); for a `settlement_mismatch`, whose gap is not in the
  difference account but in the operator's bank account (the provider's run booked there what
  it said it paid, the bank received another amount) and a `settlement_missing_at_bank` (the
  bank received none of it), between the bank account and the write-off account.
- acknowledge: nothing waits, nothing is posted (a fee the settlement booked at its actual
  figure already, a line in another currency the provider's net counted as it stood, a
  provider settlement the bank statement shows otherwise than the provider's run settled it:
  taken up with the provider, whose corrected report then settles the day again).

Everything here is pure: the database layer locks the case and posts what these functions say.
"""

from dataclasses import dataclass
from typing import Literal, get_args

from domain.ledger import (
    Entry,
    Side,
    TransactionSpec,
    operator_bank,
    player_wallet,
    provider_clearing,
    recon_difference,
    recon_write_off,
    shard_for,
)
from domain.recon.postings import case_key

CaseKind = Literal[
    "missing_ours",  # the provider moved money we have no record of (late or unknown)
    "missing_provider",  # we moved money the provider does not report
    "amount_mismatch",
    "currency_mismatch",
    "fee_mismatch",
    "duplicate",  # the provider took (or paid) the same payment twice
    "unknown_reference",  # a line (a bank transfer) naming nothing we know
    "short_payment",  # a bank transfer of less than the deposit asked for
    "over_payment",  # a bank transfer of more than the deposit asked for
    "late_payment",  # paid after the deposit expired
    "chargeback",  # the payer's bank took money back and nothing of ours accounts for it
    "chargeback_reversal",
    "settlement_unmatched",  # a provider settlement on the bank statement no run settled
    "settlement_mismatch",  # ... of another amount than the provider's run settled
    # a provider run's settlement no bank statement showed within the grace days
    "settlement_missing_at_bank",
]
CASE_KINDS: tuple[str, ...] = get_args(CaseKind)

Action = Literal[
    "credit_player",
    "assign_player",
    "refund",
    "return_to_sender",
    "charge_player",
    "write_off",
    "acknowledge",
]
ACTIONS: tuple[str, ...] = get_args(Action)

# Which resolutions fit which discrepancy. A refund goes back through the provider that took a
# card or wallet payment; money that reached the operator's bank goes back to the payer's
# account. Actions that give money need money received (`held_minor` > 0).
ALLOWED: dict[str, tuple[Action, ...]] = {
    "missing_ours": ("credit_player", "assign_player", "refund", "write_off"),
    "late_payment": ("credit_player", "refund", "return_to_sender", "write_off"),
    "duplicate": ("refund", "credit_player", "write_off"),
    "unknown_reference": ("assign_player", "return_to_sender", "write_off"),
    "short_payment": ("credit_player", "return_to_sender", "write_off"),
    "over_payment": ("credit_player", "return_to_sender", "write_off"),
    "amount_mismatch": ("credit_player", "refund", "write_off"),
    "missing_provider": ("write_off",),
    "currency_mismatch": ("acknowledge", "write_off"),
    "fee_mismatch": ("acknowledge",),
    "chargeback": ("charge_player", "write_off"),
    "chargeback_reversal": ("credit_player", "write_off"),
    # The bank's settlement is checked against what the provider's run settled; nothing of it
    # waits in the difference account (a corrected report, or the provider's run of that day
    # when it comes, closes the case by itself). A gap the provider will never pay is written
    # off the operator's bank account (`bank_delta_minor`).
    "settlement_unmatched": ("acknowledge",),
    "settlement_mismatch": ("acknowledge", "write_off"),
    # The provider's run booked its net to the operator's bank account and no statement shows
    # it: chased with the provider (acknowledge; a statement showing it later closes the case
    # by itself), or written off the bank account when it will never come.
    "settlement_missing_at_bank": ("acknowledge", "write_off"),
}
_GIVES_MONEY: frozenset[str] = frozenset(
    {"credit_player", "assign_player", "refund", "return_to_sender"}
)

# What a report line does to what the provider owes us (domain/recon/match.py's signs).
_LINE_SIGN: dict[str, int] = {
    "payment": 1,
    "transfer_in": 1,
    "chargeback_reversal": 1,
    "refund": -1,
    "payout": -1,
    "transfer_out": -1,
    "chargeback": -1,
}
# What our record of a payment the provider does not report did to our clearing.
_OUR_SIGN: dict[str, int] = {
    "deposit": -1,  # booked in clearing, never received: the difference holds a debit
    "chargeback_reversal": -1,
    "withdrawal": 1,  # booked as paid out, never paid: the money is still ours
    "refund": 1,
    "chargeback": 1,
}

# A provider's settlement on the bank statement against that provider's run: no clearing moved.
_SETTLEMENT_KINDS = ("settlement_unmatched", "settlement_mismatch", "settlement_missing_at_bank")
# ... whose gap is in the operator's bank account (`bank_delta_minor`), not the difference one.
_BANK_KINDS = ("settlement_mismatch", "settlement_missing_at_bank")

# Actions that move the money out through a provider: they finish in a workflow.
ASYNC_ACTIONS: frozenset[str] = frozenset({"refund", "return_to_sender"})


class CaseRefused(ValueError):
    """A resolution that does not fit the case: the API answers 422 with `code`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class CaseFacts:
    """What a resolution needs to know about a case (a row of `recon_cases`)."""

    id: int
    provider: str
    kind: str
    reference: str | None
    amount_minor: int
    currency: str
    details: dict[str, object]


@dataclass(frozen=True)
class Proposal:
    """A resolution as an operator asked for it, after defaults: what four eyes approve."""

    action: Action
    player_id: str | None
    amount_minor: int  # the money the resolution moves (0: acknowledge)

    def as_json(self) -> dict[str, object]:
        return {"action": self.action, "player_id": self.player_id, "amount": self.amount_minor}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def held_minor(case: CaseFacts) -> int:
    """The case's money in the difference account: positive when received and not booked (a
    credit there), negative when booked and not received or paid out without us (a debit).
    `details.delta_minor` wins where the reconciliation put one."""
    details = case.details
    explicit = _int(details.get("delta_minor"))
    if explicit is not None:
        return explicit
    if case.kind in ("fee_mismatch", "currency_mismatch", *_SETTLEMENT_KINDS):
        # The settlement booked the actual fee; a line in another currency is the provider's
        # figure in its net as it stands: nothing of either waits here unless the case says so.
        return 0
    if case.kind == "missing_provider":
        return _OUR_SIGN.get(str(details.get("our_kind")), -1) * case.amount_minor
    if case.kind in ("short_payment", "over_payment"):
        received = _int(details.get("received"))
        credited = _int(details.get("credited"))
        received = case.amount_minor if received is None else received
        return received if credited is None else received - credited
    line_sign = _LINE_SIGN.get(str(details.get("line_kind") or ""), 0)
    if case.kind == "chargeback":
        line_sign = -1
    elif case.kind == "chargeback_reversal" or line_sign == 0:
        line_sign = 1
    if case.kind == "amount_mismatch":
        delta = _int(details.get("delta"))
        return line_sign * (case.amount_minor if delta is None else delta)
    return line_sign * case.amount_minor


def bank_delta_minor(case: CaseFacts) -> int:
    """A `settlement_mismatch` (or `settlement_missing_at_bank`, where the bank received
    nothing): what the bank received less what the provider's run settled (and booked to the
    operator's bank account); 0 for any other case."""
    if case.kind not in _BANK_KINDS:
        return 0
    return _int(case.details.get("delta")) or 0


def allowed_actions(case: CaseFacts) -> tuple[Action, ...]:
    """What fits the case now: actions that give money only when money was received."""
    if case.kind in _BANK_KINDS:
        return ("acknowledge", "write_off") if bank_delta_minor(case) else ("acknowledge",)
    allowed = ALLOWED.get(case.kind, ("write_off",))
    held = held_minor(case)
    if held <= 0:
        allowed = tuple(a for a in allowed if a not in _GIVES_MONEY)
    if held == 0:  # nothing waits: nothing to move
        allowed = tuple(a for a in allowed if a != "write_off")
    else:  # money waits: it must go somewhere
        allowed = tuple(a for a in allowed if a != "acknowledge")
    return allowed or ("acknowledge",)


def payer_of(case: CaseFacts, deposit_player: str | None) -> str | None:
    """The player the case's money came from: its deposit's, or the one the line named."""
    if deposit_player is not None:
        return deposit_player
    player = case.details.get("player_id")
    return player if isinstance(player, str) else None


def propose(
    case: CaseFacts,
    *,
    action: str,
    player_id: str | None,
    amount_minor: int | None,
    payer_player_id: str | None,
) -> Proposal:
    """Check `action` against the case and fill in its defaults; CaseRefused if it does not fit.

    The money a resolution moves is the case's whole money: `amount_minor`, when given, must be
    it (an operator's confirmation of what they see). `payer_player_id` is the player the case's
    deposit credited (None when it names none): credit_player and charge_player act on that
    player, assign_player on the one the operator names.
    """
    fits_kind = action in ALLOWED.get(case.kind, ()) or action in allowed_actions(case)
    if action not in ACTIONS or not fits_kind:
        allowed = ", ".join(allowed_actions(case))
        raise CaseRefused(
            "invalid_action", f"{action!r} does not resolve a {case.kind} case; use {allowed}"
        )
    held = held_minor(case)
    if action not in allowed_actions(case):
        raise CaseRefused(
            "invalid_action",
            f"this {case.kind} case holds no money received for us ({held} {case.currency}): "
            f"use {', '.join(allowed_actions(case))}",
        )
    if action == "assign_player":
        if player_id is None:
            raise CaseRefused("player_required", "assign_player needs the player_id to credit")
        target: str | None = player_id
    elif action in ("credit_player", "charge_player"):
        if payer_player_id is None:
            raise CaseRefused(
                "player_unknown",
                "the case names no deposit or player of ours: use assign_player or write_off",
            )
        if player_id is not None and player_id != payer_player_id:
            raise CaseRefused(
                "invalid_action",
                f"{action} acts on the case's own player ({payer_player_id}); use "
                "assign_player to credit someone else",
            )
        target = payer_player_id
    else:
        if player_id is not None:
            raise CaseRefused("invalid_action", f"{action} takes no player_id")
        target = None
    money = abs(held)
    if action == "write_off" and case.kind in _BANK_KINDS:
        money = abs(bank_delta_minor(case))
    if amount_minor is not None and amount_minor != money:
        raise CaseRefused(
            "invalid_amount",
            f"{action} moves the case's money, {money} {case.currency}: send that amount or none",
        )
    return Proposal(action=action, player_id=target, amount_minor=money)


def needs_four_eyes(case: CaseFacts, *, threshold_minor: int) -> bool:
    """A second, different operator must approve resolutions of this much money or more."""
    return max(abs(held_minor(case)), abs(bank_delta_minor(case))) >= threshold_minor


def write_off_spec(case: CaseFacts) -> TransactionSpec:
    """Money nobody will pay or be paid, out of the difference account for good (a settlement
    the bank received short or over: out of the operator's bank account)."""
    if case.kind in _BANK_KINDS:
        return _bank_write_off(case)
    held = held_minor(case)
    if held == 0:
        raise CaseRefused("invalid_action", "the case holds no money to write off")
    difference = recon_difference(case.provider, case.currency)
    written_off = recon_write_off(case.currency)
    debit, credit = (difference, written_off) if held > 0 else (written_off, difference)
    return TransactionSpec(
        key=case_key(case.id, "write_off"),
        kind="recon_case_write_off",
        payment_id=case.reference,
        entries=(Entry(debit, Side.DEBIT, abs(held)), Entry(credit, Side.CREDIT, abs(held))),
    )


def _bank_write_off(case: CaseFacts) -> TransactionSpec:
    delta = bank_delta_minor(case)
    if delta == 0:
        raise CaseRefused("invalid_action", "the bank received what the run settled")
    bank, written_off = operator_bank(case.currency), recon_write_off(case.currency)
    # Less than booked: the bank account holds less than the ledger says (credit it).
    debit, credit = (written_off, bank) if delta < 0 else (bank, written_off)
    return TransactionSpec(
        key=case_key(case.id, "write_off"),
        kind="recon_case_write_off",
        payment_id=None,
        entries=(Entry(debit, Side.DEBIT, abs(delta)), Entry(credit, Side.CREDIT, abs(delta))),
    )


def credit_wallet_spec(case: CaseFacts, *, player_id: str) -> TransactionSpec:
    """Money received for a player whose deposit was credited already (paid twice, paid more)."""
    amount = held_minor(case)
    return TransactionSpec(
        key=case_key(case.id, "credit"),
        kind="recon_case_credit",
        payment_id=case.reference,
        entries=(
            Entry(recon_difference(case.provider, case.currency), Side.DEBIT, amount),
            Entry(player_wallet(player_id, case.currency), Side.CREDIT, amount),
        ),
    )


def refund_hold_spec(
    case: CaseFacts, *, refund_id: str, deposit_id: str, shards: int
) -> TransactionSpec:
    """A refund of the case's money at the provider: held like a refund of a deposit
    (`refund:{id}:hold`, which RefundWorkflow posts or releases), out of the difference account
    instead of a wallet. The provider's report then shows the refund against the deposit."""
    key = f"refund:{refund_id}:hold"
    amount = held_minor(case)
    return TransactionSpec(
        key=key,
        kind="refund_hold",
        payment_id=deposit_id,
        entries=(
            Entry(recon_difference(case.provider, case.currency), Side.DEBIT, amount),
            Entry(
                provider_clearing(case.provider, case.currency, shard_for(key, shards)),
                Side.CREDIT,
                amount,
            ),
        ),
        phase="pending",
    )


def return_hold_key(case_id: int) -> str:
    return case_key(case_id, "return:hold")


def return_hold_spec(
    case: CaseFacts, *, payout_provider: str, reference: str, shards: int
) -> TransactionSpec:
    """Money paid back to the sender's account by the operator's bank, held until the bank pays
    it (posted) or refuses (released). It leaves through the bank's clearing like a payout, so
    the statement line that shows it going out meets a posting of ours (`payment_id` is the
    payout's reference)."""
    key = return_hold_key(case.id)
    amount = held_minor(case)
    return TransactionSpec(
        key=key,
        kind="recon_case_return_hold",
        payment_id=reference,
        entries=(
            Entry(recon_difference(case.provider, case.currency), Side.DEBIT, amount),
            Entry(
                provider_clearing(payout_provider, case.currency, shard_for(key, shards)),
                Side.CREDIT,
                amount,
            ),
        ),
        phase="pending",
    )
