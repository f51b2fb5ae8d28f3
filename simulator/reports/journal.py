"""What each simulated provider booked: its money movements, journaled as they happen.

The simulated providers keep their state in `simulator.store` (charges, payments, payouts and
each connector's own records beside them). A daily report is a list of movements in a day, so
every write to the store is compared with what it replaces (`watcher`), in the same
transaction, and the movement it makes is journaled with the time it happened:

- a charge or payment that became succeeded (more received on a bank transfer: the difference);
  Halyk ePay's card payments when captured (its `charge` operation), not when authorised;
- more refunded on a payment (each connector keeps refunds its own way: a `refunded` total,
  a list of refunds or of Kaspi returns, CloudPayments' refund records in the vault);
- a payout that became paid.
Chargebacks and their reversals are journaled by the admin endpoint that raises them.
"""

import hashlib
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from simulator.store import Reader, Watcher

ALMATY = ZoneInfo("Asia/Almaty")

MovementKind = Literal["payment", "refund", "payout", "chargeback", "chargeback_reversal"]

HALYK_INVOICE = "halyk:invoice:"
CLOUDPAYMENTS_REFUNDS = "cloudpayments-refunds:"


def stamp(moment: datetime) -> str:
    """A UTC timestamp in one fixed form, so that the journal's text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def business_day(moment: datetime) -> date:
    """The provider's business day of a moment: its date in Asia/Almaty."""
    return moment.astimezone(ALMATY).date()


def day_bounds(day: date) -> tuple[str, str]:
    """[start, end) of a business day, as journal timestamps."""
    start = datetime.combine(day, time(0), tzinfo=ALMATY)
    return stamp(start), stamp(start + timedelta(days=1))


def today() -> date:
    return business_day(datetime.now(UTC))


def movement(
    kind: MovementKind,
    reference: str,
    provider_id: str,
    amount: int,
    currency: str,
    *,
    at: datetime | None = None,
    **details: Any,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "reference": reference,
        "provider_id": provider_id,
        "amount": amount,
        "currency": currency,
        "occurred": stamp(at or datetime.now(UTC)),
        **details,
    }


def _refund_id(provider: str, reference: str, total: int) -> str:
    digest = hashlib.sha256(f"{provider}:{reference}:{total}".encode()).hexdigest()
    return f"rf_{digest[:16]}"


def _refunded(data: dict[str, Any] | None) -> tuple[int, str | None]:
    """All refunded on a charge or payment record so far, and the last refund's own id."""
    if data is None:
        return 0, None
    total = int(data.get("refunded") or 0)
    last: str | None = None
    for refund in (data.get("ioka") or {}).get("refunds", []):
        if refund.get("status") == "APPROVED":
            total += int(refund["amount"])
            last = str(refund.get("id") or last)
    for returned in (data.get("kaspi") or {}).get("returns", []):
        total += int(returned["amount"])
        last = str(returned.get("id") or last)
    return total, last


def _succeeded(table: str, data: dict[str, Any] | None) -> tuple[int, str, str] | None:
    """(amount received, provider id, currency) of a succeeded charge or payment."""
    if data is None:
        return None
    if table == "payments":
        payment = data.get("payment") or {}
        if payment.get("status") != "succeeded":
            return None
        received = payment.get("amount_received") or payment.get("amount") or 0
        return int(received), str(payment["payment_id"]), str(payment["currency"])
    if data.get("status") != "succeeded":
        return None
    return int(data["amount"]), str(data["charge_id"]), str(data["currency"])


def _paid_of(table: str, provider: str, key: str, read: Reader) -> tuple[int, str, str] | None:
    found = read(table, provider, key)
    return _succeeded(table, found)


def watcher(connector_type: Callable[[str], str]) -> Watcher:
    """The store's watcher: the movements one write makes (see the module docstring).
    `connector_type(provider)` tells whose records a write is."""

    def watch(
        table: str,
        provider: str,
        key: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        read: Reader,
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if table in ("charges", "payments"):
            then, now = _succeeded(table, before), _succeeded(table, after)
            captured_later = table == "charges" and connector_type(provider) == "halyk_epay"
            if now is not None and not captured_later:
                received = now[0] - (then[0] if then is not None else 0)
                if received > 0:
                    found.append(movement("payment", key, now[1], received, now[2]))
            refunded, refund_id = _refunded(after)
            earlier, _ = _refunded(before)
            if refunded > earlier and now is not None:
                rid = refund_id or _refund_id(provider, key, refunded)
                found.append(movement("refund", key, rid, refunded - earlier, now[2]))
        elif table == "payouts":
            if after.get("status") == "paid" and (before or {}).get("status") != "paid":
                found.append(
                    movement(
                        "payout", key, str(after["payout_id"]), after["amount"], after["currency"]
                    )
                )
        elif table == "tokens" and key.startswith(HALYK_INVOICE):
            reference = str(after.get("reference"))
            paid = _paid_of("charges", provider, reference, read)
            if paid is not None and after.get("captured") and not (before or {}).get("captured"):
                found.append(movement("payment", reference, paid[1], paid[0], paid[2]))
            earlier = int((before or {}).get("refunded") or 0)
            refunded = int(after.get("refunded") or 0)
            if refunded > earlier and paid is not None:
                rid = _refund_id(provider, reference, refunded)
                found.append(movement("refund", reference, rid, refunded - earlier, paid[2]))
        elif table == "tokens" and key.startswith(CLOUDPAYMENTS_REFUNDS):
            reference = key.removeprefix(CLOUDPAYMENTS_REFUNDS)
            paid = _paid_of("charges", provider, reference, read)
            known = len((before or {}).get("refunds", []))
            for refund in after.get("refunds", [])[known:]:
                rid = str((refund.get("model") or {}).get("TransactionId") or "")
                found.append(
                    movement(
                        "refund",
                        reference,
                        rid or _refund_id(provider, reference, int(refund["amount"])),
                        int(refund["amount"]),
                        paid[2] if paid is not None else "KZT",
                    )
                )
        return found

    return watch
