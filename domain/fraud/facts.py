"""What the rules look at: one payment plus what the database knows around it.

Counts and sums describe *earlier* payments (the one being judged is excluded); rules add the
current payment themselves. `None` means "not known" (no device sent, no card on the payment, ...)
and a rule never fires on an unknown fact; that a signal the merchant should send is missing is a
fact of its own (`missing_signals`). Every decision stores its facts as JSON (`facts_to_json`),
so a backtest can run another rule set over them (`facts_from_json`).
"""

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal

PaymentKind = Literal["deposit", "withdrawal"]
Dimension = Literal["player", "card", "device", "ip", "destination"]
WindowName = Literal["10m", "1h", "24h"]

DIMENSIONS: tuple[Dimension, ...] = ("player", "card", "device", "ip", "destination")
WINDOWS: tuple[WindowName, ...] = ("10m", "1h", "24h")
WINDOW_SECONDS: dict[WindowName, int] = {"10m": 600, "1h": 3600, "24h": 86400}


@dataclass(frozen=True)
class Window:
    count: int = 0
    sum_minor: int = 0


@dataclass(frozen=True)
class Velocity:
    w10m: Window = Window()
    w1h: Window = Window()
    w24h: Window = Window()

    def window(self, name: WindowName) -> Window:
        return {"10m": self.w10m, "1h": self.w1h, "24h": self.w24h}[name]


@dataclass(frozen=True)
class LimitUse:
    """A responsible-gaming deposit cap and what the player deposited in its rolling period."""

    period: Literal["daily", "weekly", "monthly"]
    limit_minor: int
    used_minor: int


@dataclass(frozen=True)
class ListHit:
    """A block or allow list entry that names this payment's person, card, device, IP, ..."""

    list_type: Literal["block", "allow"]
    kind: str
    entry_id: int


Signal = Literal["device", "ip"]


@dataclass(frozen=True)
class PaymentFacts:
    kind: PaymentKind
    amount_minor: int
    currency: str
    method: str
    player_age: int | None = None
    self_excluded: bool = False
    deposit_limits: tuple[LimitUse, ...] = ()
    # Earlier payments of the same kind sharing this player, card, device, IP or destination.
    velocity: dict[Dimension, Velocity] = field(default_factory=dict)
    # Small provider-declined deposits in the last hour, by player, card and device.
    small_declines_1h: dict[Dimension, int] = field(default_factory=dict)
    # Other identities (distinct IINs) that used this device, card or destination recently.
    other_identities: dict[Dimension, int] = field(default_factory=dict)
    card_country: str | None = None
    ip_country: str | None = None
    previous_ip_country: str | None = None
    device_known: bool | None = None  # None: no device id on the payment
    deposits_lookback_minor: int = 0  # succeeded deposits in the turnover look-back
    bets_lookback_minor: int = 0  # game bets in the same look-back
    destination_name_matches: bool | None = None
    destination_card_deposited: bool | None = None
    # The player was paid out to this destination before (or, a card, deposited with it).
    destination_used_before: bool | None = None
    # The cardholder name given with the card (or reported by the provider) is the player's.
    card_holder_matches: bool | None = None
    # Client signals the payment came without (no device id, no or no valid IP address).
    missing_signals: tuple[Signal, ...] = ()
    # Block and allow list entries that name the payment's identifiers (checked first).
    list_hits: tuple[ListHit, ...] = ()

    def velocity_of(self, dimension: Dimension) -> Velocity | None:
        return self.velocity.get(dimension)


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` without its deep copies (the facts are frozen, their leaves plain):
    a decision is stored on every payment, and the copies cost more than the rules."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def facts_to_json(facts: PaymentFacts) -> dict[str, Any]:
    """The facts as stored with the decision (plain JSON, amounts in minor units)."""
    data: dict[str, Any] = _plain(facts)
    data["velocity"] = {
        dimension: {name: _plain(velocity.window(name)) for name in WINDOWS}
        for dimension, velocity in facts.velocity.items()
    }
    return data


def facts_from_json(data: dict[str, Any]) -> PaymentFacts:
    """Facts as `facts_to_json` stored them; fields added later take their defaults."""
    known = {f for f in PaymentFacts.__dataclass_fields__}
    values = {k: v for k, v in data.items() if k in known}
    values["velocity"] = {
        dimension: Velocity(*(Window(**windows.get(name, {})) for name in WINDOWS))
        for dimension, windows in (data.get("velocity") or {}).items()
    }
    values["deposit_limits"] = tuple(LimitUse(**use) for use in data.get("deposit_limits") or ())
    values["missing_signals"] = tuple(data.get("missing_signals") or ())
    values["list_hits"] = tuple(ListHit(**hit) for hit in data.get("list_hits") or ())
    return PaymentFacts(**values)
