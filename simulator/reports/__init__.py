"""Daily reports of the simulated providers and the bank's statements of the operator's account.

Every provider delivers, for each business day (Asia/Almaty), a report of what it processed:
payments, refunds, payouts, chargebacks and their reversals, the fee it kept on each, the net
amount it settles to the operator's bank account and the settlement date. The report is built
from the movements the provider journaled that day (`simulator.reports.journal`), in the format
of its connector type (`simulator.reports.formats`), and served over the provider's own API and
as a file (`simulator.reports.routes`). The bank's statement (`simulator.reports.statement`)
shows the transfers players made, each provider's settlement on its settlement date and the
bank's own payouts.

`ReportBehaviour` (per provider, `PUT /admin/providers/{name}/report-behaviour`) sets the fee
and the settlement delay, and makes the report wrong in each way a reconciliation must catch:
a line missing, a line twice, an amount, a fee or a currency different, lines for payments
nobody asked for, a settled amount that is not the lines' sum. A corrected report is issued
by `POST /admin/providers/{name}/reports/{date}/reissue` (the next revision, built with the
behaviour then in force).

A report is built afresh at each request from the journal: the same journal and behaviour give
the same bytes (its time of issue is kept per revision), so a report can be hashed.
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.ledger import fee_for
from simulator.faults import SimulatorError
from simulator.reports.journal import (
    ALMATY,
    MovementKind,
    day_bounds,
    movement,
    parse_stamp,
    stamp,
    today,
    watcher,
)

if TYPE_CHECKING:
    from simulator.app import Registry

__all__ = ["ALMATY", "Books", "Entry", "ReportBehaviour", "ReportContent", "watcher"]

# How each kind moves the provider's debt to the operator: payments in, the rest out.
SIGN: dict[MovementKind, int] = {
    "payment": 1,
    "refund": -1,
    "payout": -1,
    "chargeback": -1,
    "chargeback_reversal": 1,
}


class ExtraLine(BaseModel):
    """A line for a payment the platform never asked for (or one it gave up on)."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(min_length=1, max_length=80)
    kind: MovementKind = "payment"
    amount: int = Field(gt=0, description="minor units")
    currency: str = Field(default="KZT", min_length=3, max_length=3)
    business_date: date = Field(default_factory=today, description="the report it appears in")


class ReportBehaviour(BaseModel):
    """How one provider reports and settles, and how its report is wrong. A PUT replaces it
    whole; unknown knobs are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    fee_bps: int | None = Field(
        default=None,
        ge=0,
        le=10_000,
        description="fee on each payment in basis points; null: the platform's configured "
        "`provider_fee_bps` for this provider (0 when none), so a clean day reconciles",
    )
    payout_fee_bps: int = Field(default=0, ge=0, le=10_000, description="fee on each payout")
    chargeback_fee_minor: int = Field(default=0, ge=0, description="fee on each chargeback")
    settlement_delay_days: int = Field(
        default=1, ge=0, le=10, description="the net is paid this many days after the day"
    )
    missing: list[str] = Field(
        default_factory=list, description="references whose lines the report leaves out"
    )
    duplicated: list[str] = Field(
        default_factory=list, description="references whose lines the report writes twice"
    )
    amount_delta: dict[str, int] = Field(
        default_factory=dict, description="reference -> added to its lines' amounts (minor)"
    )
    fee_delta: dict[str, int] = Field(
        default_factory=dict, description="reference -> added to its lines' fees (minor)"
    )
    currency: dict[str, str] = Field(
        default_factory=dict, description="reference -> another currency written on its lines"
    )
    extra_lines: list[ExtraLine] = Field(
        default_factory=list, description="lines for payments the platform never saw"
    )
    net_delta_minor: int = Field(
        default=0, description="added to the settled net (and to the bank's settlement credit)"
    )


@dataclass(frozen=True)
class Entry:
    """One line of a provider's report."""

    kind: MovementKind
    reference: str
    provider_id: str
    amount: int
    fee: int
    currency: str
    occurred_at: datetime  # UTC

    @property
    def net(self) -> int:
        return SIGN[self.kind] * self.amount - self.fee


@dataclass(frozen=True)
class ReportContent:
    """A provider's report for one business day: the header and a way to walk its lines."""

    provider: str
    connector_type: str
    merchant_id: str
    business_date: date
    settlement_date: date
    currency: str
    net_minor: int
    revision: int
    issued_at: datetime  # UTC
    books: "Books"

    def entries(self) -> Iterator[Entry]:
        return self.books.entries(self.provider, self.business_date)


def _synthetic_id(provider: str, reference: str, kind: str) -> str:
    return "ext_" + hashlib.sha256(f"{provider}:{reference}:{kind}".encode()).hexdigest()[:16]


class Books:
    """Every provider's report behaviour, report revisions and chargebacks."""

    def __init__(self, registry: "Registry") -> None:
        self.registry = registry
        self.behaviours: dict[str, ReportBehaviour] = {}
        registry.store.watcher = watcher(registry.connector_type)

    def behaviour(self, name: str) -> ReportBehaviour:
        return self.behaviours.get(name) or ReportBehaviour()

    def fee(self, name: str, kind: MovementKind, amount: int) -> int:
        b = self.behaviour(name)
        if kind == "payment":
            bps = b.fee_bps
            if bps is None:
                bps = self.registry.settings.provider_fee_bps.get(name, 0)
            return fee_for(amount, bps)
        if kind == "payout":
            return fee_for(amount, b.payout_fee_bps)
        if kind == "chargeback":
            return b.chargeback_fee_minor
        return 0

    def entries(self, name: str, day: date) -> Iterator[Entry]:
        """The report's lines: the day's movements, then the extra lines, as the behaviour
        makes them (streamed from the journal)."""
        b = self.behaviour(name)
        start, end = day_bounds(day)
        for moved in self.registry.store.movements(name, start, end):
            reference = moved["reference"]
            if reference in b.missing:
                continue
            amount = int(moved["amount"]) + b.amount_delta.get(reference, 0)
            entry = Entry(
                kind=moved["kind"],
                reference=reference,
                provider_id=moved["provider_id"],
                amount=amount,
                fee=self.fee(name, moved["kind"], amount) + b.fee_delta.get(reference, 0),
                currency=b.currency.get(reference, moved["currency"]),
                occurred_at=parse_stamp(moved["occurred"]),
            )
            yield entry
            if reference in b.duplicated:
                yield entry
        noon = datetime.combine(day, datetime.min.time(), tzinfo=ALMATY) + timedelta(hours=12)
        for extra in b.extra_lines:
            if extra.business_date == day:
                yield Entry(
                    kind=extra.kind,
                    reference=extra.reference,
                    provider_id=_synthetic_id(name, extra.reference, extra.kind),
                    amount=extra.amount,
                    fee=self.fee(name, extra.kind, extra.amount),
                    currency=extra.currency,
                    occurred_at=noon.astimezone(UTC),
                )

    def net(self, name: str, day: date) -> int:
        return sum(e.net for e in self.entries(name, day)) + self.behaviour(name).net_delta_minor

    def settlement_date(self, name: str, day: date) -> date:
        return day + timedelta(days=self.behaviour(name).settlement_delay_days)

    # -- revisions --------------------------------------------------------------------------

    def _revisions_key(self, day: date) -> str:
        return f"reports:revisions:{day.isoformat()}"

    def revision(self, name: str, day: date) -> tuple[int, datetime]:
        """The report's current revision and when it was issued (the first ask issues 1)."""
        store = self.registry.store
        kept = store.get_token(name, self._revisions_key(day))
        if kept is None:
            kept = {"revision": 1, "issued_at": datetime.now(UTC).isoformat()}
            store.put_token(name, self._revisions_key(day), kept)
        return int(kept["revision"]), datetime.fromisoformat(str(kept["issued_at"]))

    def reissue(self, name: str, day: date) -> tuple[int, datetime]:
        """A corrected report: the next revision, issued now."""
        revision, _ = self.revision(name, day)
        issued_at = datetime.now(UTC)
        kept = {"revision": revision + 1, "issued_at": issued_at.isoformat()}
        self.registry.store.put_token(name, self._revisions_key(day), kept)
        return revision + 1, issued_at

    def content(self, name: str, day: date) -> ReportContent:
        revision, issued_at = self.revision(name, day)
        return ReportContent(
            provider=name,
            connector_type=self.registry.connector_type(name),
            merchant_id=self.registry.settings.connector(name).merchant_id or name,
            business_date=day,
            settlement_date=self.settlement_date(name, day),
            currency="KZT",
            net_minor=self.net(name, day),
            revision=revision,
            issued_at=issued_at,
            books=self,
        )

    # -- chargebacks ------------------------------------------------------------------------

    def paid(self, name: str, reference: str) -> tuple[int, str, str]:
        """(amount, provider id, currency) of a payment this provider took under `reference`."""
        store = self.registry.store
        charge = store.get_charge(name, reference)
        if charge is not None and charge.get("status") == "succeeded":
            return int(charge["amount"]), str(charge["charge_id"]), str(charge["currency"])
        held = store.get_payment(name, reference)
        payment = (held or {}).get("payment") or {}
        if payment.get("status") == "succeeded":
            received = int(payment.get("amount_received") or payment["amount"])
            return received, str(payment["payment_id"]), str(payment["currency"])
        raise SimulatorError(404, "not_found", f"{name} took no payment under {reference!r}")

    def charged_back(self, name: str, reference: str) -> int:
        """What stands charged back on a payment now (chargebacks less their reversals)."""
        total = 0
        start, end = stamp(datetime(2000, 1, 1, tzinfo=UTC)), "9999"
        for moved in self.registry.store.movements(name, start, end, reference=reference):
            if moved["kind"] == "chargeback":
                total += int(moved["amount"])
            elif moved["kind"] == "chargeback_reversal":
                total -= int(moved["amount"])
        return total

    def chargeback(
        self,
        name: str,
        reference: str,
        amount: int | None,
        reason: str,
        kind: Literal["chargeback", "chargeback_reversal"],
    ) -> dict[str, Any]:
        """Journal a chargeback (or its reversal) on a payment: it is in the next report."""
        paid, payment_id, currency = self.paid(name, reference)
        standing = self.charged_back(name, reference)
        limit = paid - standing if kind == "chargeback" else standing
        asked = limit if amount is None else amount
        if asked <= 0 or asked > limit:
            what = "left to charge back" if kind == "chargeback" else "charged back"
            raise SimulatorError(409, "invalid_amount", f"{asked} asked, {limit} {what}")
        number = hashlib.sha256(f"{payment_id}:{kind}:{standing}".encode()).hexdigest()[:12]
        moved = movement(
            kind,
            reference,
            f"cb_{number}",
            asked,
            currency,
            reason=reason,
            payment_id=payment_id,
        )
        self.registry.store.add_movement(name, moved)
        return moved
