"""Cash-out destinations under the closed-loop rule.

Money goes back the way it came before profits go anywhere else: while the player has net
deposits through a method (succeeded deposits minus the withdrawals by that method that were not
rejected, failed or cancelled), only those methods are offered, each up to its net deposits;
once they are returned, winnings may go to any of the player's verified destinations.

A destination is always the player's own, as `POST /v1/withdrawals` requires: a card the player
deposited with (and that the card payout provider vaulted), the player's registered phone for
mobile banking, an e-wallet account the player deposited from, or an IBAN in the player's name
(typed on the page; the bank transfer checks it). QR deposits are paid from a banking app tied
to the player's phone, so they return by mobile banking; aggregator deposits name no
instrument and return through whichever loop method remains (an assumption to confirm with
operators).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

LOOP_METHOD = {
    "card": "card",
    "mobile_banking": "mobile_banking",
    "qr": "mobile_banking",
    "ewallet": "ewallet",
    "bank_transfer": "bank_transfer",
}
PAYOUT_METHODS = ("card", "mobile_banking", "ewallet", "bank_transfer")
NOT_WITHDRAWN = ("rejected", "failed", "cancelled")


@dataclass(frozen=True)
class DepositFact:
    id: str
    method: str
    amount_minor: int
    card: Mapping[str, Any] | None = None
    account: str | None = None


@dataclass(frozen=True)
class Destination:
    id: str
    method: str
    max_amount: int
    shown: dict[str, str] = field(default_factory=dict)
    """What the page says about it: scheme and last four, phone, wallet account."""
    request: dict[str, Any] = field(default_factory=dict)
    """`destination` of the withdrawal, before what the player types (the IBAN)."""
    typed: tuple[str, ...] = ()


@dataclass(frozen=True)
class PayoutOffer:
    available: int
    loop_total: int
    """Net deposits still to go back the way they came (0: winnings, any destination)."""
    destinations: list[Destination]

    def find(self, destination_id: str) -> Destination | None:
        return next((d for d in self.destinations if d.id == destination_id), None)


def net_deposits(deposits: Sequence[DepositFact], withdrawn: Mapping[str, int]) -> dict[str, int]:
    """Per payout method: succeeded deposits through it less what went out by it, at least 0."""
    totals: dict[str, int] = {}
    for deposit in deposits:
        loop = LOOP_METHOD.get(deposit.method)
        if loop is not None:
            totals[loop] = totals.get(loop, 0) + deposit.amount_minor
    return {m: max(0, total - withdrawn.get(m, 0)) for m, total in totals.items()}


def _cards(deposits: Sequence[DepositFact], payout_provider: str) -> list[Destination]:
    """One destination per card (BIN + last four), paid back through its latest deposit."""
    seen: dict[str, Destination] = {}
    for deposit in deposits:  # newest first
        card = deposit.card or {}
        tokens = dict(card.get("tokens") or {})
        key = f"{card.get('bin')}:{card.get('last4')}"
        if deposit.method != "card" or key in seen or payout_provider not in tokens:
            continue
        seen[key] = Destination(
            id=f"card:{deposit.id}",
            method="card",
            max_amount=0,
            shown={"scheme": str(card.get("scheme", "")).title(), "last4": str(card["last4"])},
            request={"deposit_id": deposit.id},
        )
    return list(seen.values())


def _wallets(deposits: Sequence[DepositFact]) -> list[Destination]:
    seen: dict[str, Destination] = {}
    for deposit in deposits:
        if deposit.method == "ewallet" and deposit.account and deposit.account not in seen:
            seen[deposit.account] = Destination(
                id=f"ewallet:{deposit.id}",
                method="ewallet",
                max_amount=0,
                shown={"account": deposit.account},
                request={"wallet_account": deposit.account},
            )
    return list(seen.values())


def payout_offer(
    *,
    available: int,
    deposits: Sequence[DepositFact],
    withdrawn: Mapping[str, int],
    phone: str,
    holder_name: str,
    payout_providers: Mapping[str, str],
    allowed: Sequence[str] | None,
    minimum: int,
) -> PayoutOffer:
    """The destinations the page offers and how much each may take now. `deposits`: the
    player's succeeded deposits, newest first; `withdrawn`: per method, withdrawals that were
    not rejected, failed or cancelled."""
    net = net_deposits(deposits, withdrawn)
    loop_total = sum(net.values())
    candidates: list[Destination] = [
        *_cards(deposits, payout_providers.get("card", "")),
        Destination(
            id="mobile_banking",
            method="mobile_banking",
            max_amount=0,
            shown={"phone": phone},
            request={"phone": phone},
        ),
        *_wallets(deposits),
        Destination(
            id="bank_transfer",
            method="bank_transfer",
            max_amount=0,
            request={"holder_name": holder_name},
            typed=("iban",),
        ),
    ]
    offered = _limited(
        candidates, net if loop_total else None, available, allowed, minimum, payout_providers
    )
    if not offered and loop_total:  # no way back is payable (a card never vaulted for payouts)
        offered = _limited(candidates, None, available, allowed, minimum, payout_providers)
    return PayoutOffer(available=available, loop_total=loop_total, destinations=offered)


def _limited(
    candidates: Sequence[Destination],
    net: Mapping[str, int] | None,
    available: int,
    allowed: Sequence[str] | None,
    minimum: int,
    payout_providers: Mapping[str, str],
) -> list[Destination]:
    offered: list[Destination] = []
    for destination in candidates:
        if allowed is not None and destination.method not in allowed:
            continue
        if destination.method not in payout_providers:
            continue
        limit = available if net is None else min(available, net.get(destination.method, 0))
        if limit >= minimum:
            offered.append(
                Destination(
                    id=destination.id,
                    method=destination.method,
                    max_amount=limit,
                    shown=destination.shown,
                    request=destination.request,
                    typed=destination.typed,
                )
            )
    return offered
