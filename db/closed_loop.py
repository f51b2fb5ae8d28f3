"""The amounts the closed loop judges by (domain/fraud/closed_loop.py): per instrument the player
deposited with, what went in (succeeded deposits), and what came back (refunds that did not fail,
withdrawals that are not rejected, failed or cancelled); and whether a destination was paid before.
The instruments are those of the hosted checkout's cash-out (checkout/payout.py): a card, an
e-wallet account, the phone (mobile banking, and QR payments from the bank app tied to it), and
for bank transfers an IBAN in the player's name.
Read from the player's own rows: deposits by player (index of migration 0001), withdrawals by
player (0004), refunds by deposit (0100).
"""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.fraud.closed_loop import Instrument
from domain.withdrawals import destination_fingerprint

_DEPOSITED = text(
    """
    SELECT d.method, d.card, d.details, d.amount_minor,
           coalesce((SELECT sum(r.amount_minor) FROM refunds r
                     WHERE r.deposit_id = d.id AND r.status NOT IN ('failed', 'refused')), 0)
               AS refunded
    FROM deposits d
    WHERE d.player_id = :player_id AND d.status = 'succeeded' AND d.currency = :currency
      AND d.method IN ('card', 'ewallet', 'mobile_banking', 'qr', 'bank_transfer')
    """
)
_WITHDRAWN = text(
    """
    SELECT destination_fingerprint AS key, method, sum(amount_minor) AS total,
           bool_or(status = 'paid') AS paid
    FROM withdrawals
    WHERE player_id = :player_id AND currency = :currency
      AND status NOT IN ('rejected', 'failed', 'cancelled')
    GROUP BY destination_fingerprint, method
    """
)


# Bank transfers name no payer account: they go back to an IBAN in the player's name, any.
ANY_IBAN = "bank_transfer:own-iban"


async def instruments(
    session: AsyncSession, *, player_id: str, currency: str, player_phone: str
) -> tuple[tuple[Instrument, ...], set[str]]:
    """The player's deposit instruments with what each may still take, and the destinations
    the player was paid out to before. QR payments come from a banking app tied to the
    player's phone: they go back by mobile banking to it."""
    deposited: dict[str, list[int]] = {}
    labels: dict[str, tuple[str, str]] = {}
    params = {"player_id": player_id, "currency": currency}
    for method, card, details, amount, refunded in (
        await session.execute(_DEPOSITED, params)
    ).all():
        found = _instrument(method, card or {}, details or {}, player_phone)
        if found is None:
            continue
        key, label = found
        totals = deposited.setdefault(key, [0, 0])
        totals[0] += int(amount)
        totals[1] += int(refunded)
        labels[key] = (method, label)
    paid: set[str] = set()
    withdrawn: dict[str, int] = {}
    for key, method, total, was_paid in (await session.execute(_WITHDRAWN, params)).all():
        withdrawn[key] = withdrawn.get(key, 0) + int(total)
        if method == "bank_transfer":
            withdrawn[ANY_IBAN] = withdrawn.get(ANY_IBAN, 0) + int(total)
        if was_paid:
            paid.add(key)
    found_instruments = tuple(
        Instrument(
            method=labels[key][0],
            key=key,
            label=labels[key][1],
            deposited_minor=totals[0],
            returned_minor=totals[1] + withdrawn.get(key, 0),
        )
        for key, totals in deposited.items()
    )
    return found_instruments, paid


def _instrument(
    method: str, card: dict[str, object], details: dict[str, object], player_phone: str
) -> tuple[str, str] | None:
    if method == "card":
        fingerprint = card.get("fingerprint")
        value = (
            fingerprint
            if isinstance(fingerprint, str)
            else f"{card.get('bin')}:{card.get('last4')}"
        )
        label = f"card {card.get('bin', '')}******{card.get('last4', '')}"
        return destination_fingerprint("card", value), label
    if method == "ewallet" and isinstance(details.get("account"), str):
        account = str(details["account"])
        return destination_fingerprint("ewallet", account), f"wallet {account}"
    if method in ("mobile_banking", "qr"):
        given = details.get("phone") if method == "mobile_banking" else None
        phone = given if isinstance(given, str) else player_phone
        label = f"phone {phone[:5]}***{phone[-2:]}"
        return destination_fingerprint("mobile_banking", phone), label
    if method == "bank_transfer":
        return ANY_IBAN, "an IBAN in the player's name"
    return None
