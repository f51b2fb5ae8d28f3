"""Every rule: a code (the reason shown on the payment), its parameters and a pure predicate.

Which rules run for deposits and for withdrawals, with which action, score and thresholds, is
configuration (`config/fraud_rules.toml`). A rule returns True when it fires; it never fires on a
fact that is unknown. A `mandatory` rule (the law, the player's own limits, the block list) also
applies to a payment an allow list names; the others are then evaluated and stored, not counted.
"""

from collections.abc import Callable
from dataclasses import dataclass

from domain.fraud.config import RuleConfig
from domain.fraud.facts import DIMENSIONS, WINDOWS, Dimension, PaymentFacts, WindowName

Predicate = Callable[[PaymentFacts, RuleConfig], bool]


@dataclass(frozen=True)
class Rule:
    code: str
    description: str
    params: tuple[str, ...]
    check: Predicate
    list_params: tuple[str, ...] = ()
    mandatory: bool = False


RULES: dict[str, Rule] = {}


def rule(
    code: str,
    description: str,
    *params: str,
    list_params: tuple[str, ...] = (),
    mandatory: bool = False,
) -> Callable[[Predicate], Predicate]:
    def register(check: Predicate) -> Predicate:
        if code in RULES:
            raise ValueError(f"rule {code} registered twice")
        RULES[code] = Rule(
            code, description, (*params, *list_params), check, list_params, mandatory
        )
        return check

    return register


# -- lists: checked first -------------------------------------------------------------------


@rule(
    "blocklisted",
    "a block list names the person (IIN), card, device, IP or network, IBAN, phone or wallet",
    mandatory=True,
)
def _blocklisted(f: PaymentFacts, c: RuleConfig) -> bool:
    return any(hit.list_type == "block" for hit in f.list_hits)


@rule(
    "allowlisted",
    "an allow list names the payment: only mandatory rules (law, limits, block list) count",
    mandatory=True,
)
def _allowlisted(f: PaymentFacts, c: RuleConfig) -> bool:
    return any(hit.list_type == "allow" for hit in f.list_hits)


# -- amounts ------------------------------------------------------------------------------------


@rule("amount_below_minimum", "amount under the minimum", "min_amount", mandatory=True)
def _below_minimum(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.amount_minor < c.int("min_amount")


@rule("amount_above_maximum", "amount over the maximum", "max_amount", mandatory=True)
def _above_maximum(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.amount_minor > c.int("max_amount")


@rule("large_amount", "amount at or over the manual-review threshold", "min_amount")
def _large_amount(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.amount_minor >= c.int("min_amount")


@rule(
    "financial_monitoring_threshold",
    "amount at or over the threshold reported to the financial-monitoring authority",
    "min_amount",
    mandatory=True,
)
def _reportable(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.amount_minor >= c.int("min_amount")


# -- velocity: count and sum per player, card, device, IP and destination per window ----------


def velocity_code(dimension: Dimension, measure: str, window: WindowName) -> str:
    """`velocity_count_10m` for the player (the first rule set's codes), else with the dimension."""
    prefix = "velocity" if dimension == "player" else f"velocity_{dimension}"
    return f"{prefix}_{measure}_{window}"


def _velocity_rule(dimension: Dimension, measure: str, window: WindowName) -> None:
    def check(f: PaymentFacts, c: RuleConfig) -> bool:
        velocity = f.velocity_of(dimension)
        if velocity is None:
            return False
        earlier = velocity.window(window)
        if measure == "count":
            return earlier.count + 1 > c.int("max")
        return earlier.sum_minor + f.amount_minor > c.int("max")

    what = "payments" if measure == "count" else "amount"
    rule(
        velocity_code(dimension, measure, window),
        f"{what} per {dimension} in {window} over the maximum (this payment included)",
        "max",
    )(check)


for _dimension in DIMENSIONS:
    for _window in WINDOWS:
        for _measure in ("count", "sum"):
            _velocity_rule(_dimension, _measure, _window)


# -- card testing and multi-accounting ---------------------------------------------------------


@rule(
    "card_testing",
    "many small provider-declined deposits in the last hour by this player, card or device",
    "max_declines",
)
def _card_testing(f: PaymentFacts, c: RuleConfig) -> bool:
    return any(count >= c.int("max_declines") for count in f.small_declines_1h.values())


def _multi_account_rule(dimension: Dimension) -> None:
    def check(f: PaymentFacts, c: RuleConfig) -> bool:
        return f.other_identities.get(dimension, 0) >= c.int("max_other_identities")

    rule(
        f"multi_account_{dimension}",
        f"this {dimension} was used by other people (other IINs) recently",
        "max_other_identities",
    )(check)


for _dimension in ("device", "card", "destination"):
    _multi_account_rule(_dimension)


@rule(
    "card_holder_mismatch",
    "the cardholder name (given with the card or reported by the provider) is not the player's",
)
def _card_holder_mismatch(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.card_holder_matches is False


# -- missing signals: configured only where the merchant sends them ---------------------------


@rule("missing_device", "no device id came with the payment, though the merchant sends one")
def _missing_device(f: PaymentFacts, c: RuleConfig) -> bool:
    return "device" in f.missing_signals


@rule("missing_ip", "no (valid) client IP came with the payment, though the merchant sends one")
def _missing_ip(f: PaymentFacts, c: RuleConfig) -> bool:
    return "ip" in f.missing_signals


# -- withdrawals: cycling, destination ownership, account takeover ----------------------------


@rule(
    "low_turnover",
    "withdrawal after deposits with little game turnover in between (cycling)",
    "min_turnover_pct",
    "min_deposits",
)
def _low_turnover(f: PaymentFacts, c: RuleConfig) -> bool:
    deposits = f.deposits_lookback_minor
    if deposits < c.int("min_deposits"):
        return False
    return f.bets_lookback_minor * 100 < deposits * c.int("min_turnover_pct")


@rule("destination_name_mismatch", "payout destination is not in the player's name or IIN")
def _name_mismatch(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.destination_name_matches is False


@rule("card_not_used_for_deposit", "payout to a card the player never deposited with")
def _card_not_deposited(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.destination_card_deposited is False


@rule(
    "new_payout_destination",
    "payout to a destination the player was never paid to (nor, a card, deposited with)",
)
def _new_destination(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.destination_used_before is False


@rule("new_device_large_amount", "a device new to this player, for a large amount", "min_amount")
def _new_device(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.device_known is False and f.amount_minor >= c.int("min_amount")


@rule(
    "ip_country_change_large_amount",
    "the IP's country differs from the player's previous one, for a large amount",
    "min_amount",
)
def _ip_country_change(f: PaymentFacts, c: RuleConfig) -> bool:
    return (
        f.ip_country is not None
        and f.previous_ip_country is not None
        and f.ip_country != f.previous_ip_country
        and f.amount_minor >= c.int("min_amount")
    )


# -- geography and compliance ------------------------------------------------------------------


@rule(
    "card_country_not_allowed",
    "the card's issuing country (from the BIN) is not allowed",
    list_params=("allowed_countries",),
)
def _card_country(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.card_country is not None and f.card_country not in c.strings("allowed_countries")


@rule(
    "ip_country_not_allowed",
    "the client's IP is in a country that is not allowed",
    list_params=("allowed_countries",),
)
def _ip_country(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.ip_country is not None and f.ip_country not in c.strings("allowed_countries")


@rule(
    "underage",
    "the player is younger than the minimum age (from the IIN)",
    "min_age",
    mandatory=True,
)
def _underage(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.player_age is not None and f.player_age < c.int("min_age")


@rule("self_excluded", "the player is self-excluded", mandatory=True)
def _self_excluded(f: PaymentFacts, c: RuleConfig) -> bool:
    return f.self_excluded


@rule(
    "deposit_limit_exceeded",
    "the deposit would pass a responsible-gaming deposit limit",
    mandatory=True,
)
def _deposit_limit(f: PaymentFacts, c: RuleConfig) -> bool:
    return any(use.used_minor + f.amount_minor > use.limit_minor for use in f.deposit_limits)
