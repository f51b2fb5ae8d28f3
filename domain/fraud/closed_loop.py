"""Closed loop: money goes back the way it came before profits go anywhere else.

A withdrawal goes first to the instruments the player deposited with (a card, an e-wallet
account, a mobile-banking phone), up to the net deposited through each (succeeded deposits less
refunds and the withdrawals already paid or under way to it). Beyond that, it may go to any method
in the player's own name: one the player deposited with or was paid to, the player's registered
phone, or an account whose holder name is the player's; an account named for someone else is
refused, and one given without a name is let through to the engine's review
(`new_payout_destination`, `destination_name_mismatch`), where an operator verifies it. Otherwise
the withdrawal is refused and the allowed destinations are listed with what each may still take.

A QR payment goes back to the phone its banking app is tied to (by mobile banking); a bank
transfer names no payer account, so it goes back to an IBAN in the player's name; an aggregator
names no instrument and does not bind the loop (as the hosted checkout's cash-out assumes). Pure
functions; `db/closed_loop.py` gathers the amounts.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """One way the player paid in, as payouts name it."""

    method: str
    key: str  # destination_fingerprint(method, normalized value)
    label: str  # what an operator or the player recognizes: a masked card, an account
    deposited_minor: int
    returned_minor: int  # refunded, and paid out (or under way) to it

    @property
    def remaining_minor(self) -> int:
        return max(0, self.deposited_minor - self.returned_minor)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str | None = None  # closed_loop_required | destination_not_in_player_name
    detail: str = ""
    allowed_destinations: tuple[Instrument, ...] = ()


def judge(
    *,
    method: str,
    destination_key: str | tuple[str, ...],
    amount_minor: int,
    instruments: tuple[Instrument, ...],
    paid_before: bool,
    name_matches: bool | None,
) -> Verdict:
    """Whether a withdrawal of `amount_minor` to this destination respects the closed loop.

    `destination_key`: the keys the destination answers to (its own; an IBAN not named for
    someone else also the bank-transfer bucket). `paid_before`: the player was paid out to this
    destination before; `name_matches`: the destination's holder name is the player's (None: no
    name given, or none to give).
    """
    keys = (destination_key,) if isinstance(destination_key, str) else destination_key
    outstanding = tuple(i for i in instruments if i.remaining_minor > 0)
    own = next((i for i in outstanding if i.key in keys), None) or next(
        (i for i in instruments if i.key in keys), None
    )
    others = sum(i.remaining_minor for i in outstanding if i is not own)
    if own is not None and own.remaining_minor > 0:
        if amount_minor <= own.remaining_minor or others == 0:
            return Verdict(True)
        return Verdict(
            False,
            "closed_loop_required",
            f"at most {own.remaining_minor} minor units may go to this {method} now: the rest "
            "of the deposits goes back first to the other instruments they came from",
            outstanding,
        )
    if outstanding:
        return Verdict(
            False,
            "closed_loop_required",
            "deposits go back first to the instruments they came from, up to the net "
            "deposited through each: withdraw to one of allowed_destinations",
            outstanding,
        )
    if own is not None or paid_before or name_matches is True:
        return Verdict(True)
    if name_matches is False:
        return Verdict(
            False,
            "destination_not_in_player_name",
            "the destination's holder is not the player: payouts go only to accounts in the "
            "player's own name",
            tuple(instruments),
        )
    return Verdict(True)  # no name given: the engine's review verifies it
