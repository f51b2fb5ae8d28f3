"""What the rules look at: one payment plus what the database knows around it.

Counts and sums describe *earlier* payments (the one being judged is excluded); rules add the
current payment themselves. `None` means "not known" (no device sent, no card on the payment, ...)
and a rule never fires on an unknown fact.
"""

from dataclasses import dataclass, field
from typing import Literal

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

    def velocity_of(self, dimension: Dimension) -> Velocity | None:
        return self.velocity.get(dimension)
