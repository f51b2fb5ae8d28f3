"""Every fraud rule fires and stays quiet as it should; the engine, the rule file and look-ups."""

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from domain.fraud import PaymentFacts, RuleConfig, RuleSource, Velocity, Window, evaluate
from domain.fraud.config import DEFAULT_RULES_PATH, RuleConfigError, load_rule_set, parse_rule_set
from domain.fraud.facts import DIMENSIONS, WINDOWS, LimitUse, ListHit
from domain.fraud.geo import bin_country, card_key, ip_country, names_match
from domain.fraud.rules import RULES, velocity_code
from domain.risk import RiskVerdict
from domain.withdrawals import destination_fingerprint

VERSION = load_rule_set(DEFAULT_RULES_PATH).version
BASE = PaymentFacts(kind="deposit", amount_minor=500_000, currency="KZT", method="card")


def facts(**changes: Any) -> PaymentFacts:
    return dataclasses.replace(BASE, **changes)


def cfg(**params: Any) -> RuleConfig:
    return RuleConfig(action="review", score=10, params=params)


# (params, facts that fire, facts that do not) per rule; velocity rules are generated below.
CASES: dict[str, tuple[dict[str, Any], PaymentFacts, PaymentFacts]] = {
    "amount_below_minimum": (
        {"min_amount": 100_00},
        facts(amount_minor=99_99),
        facts(amount_minor=100_00),
    ),
    "amount_above_maximum": (
        {"max_amount": 1_000_00},
        facts(amount_minor=1_000_01),
        facts(amount_minor=1_000_00),
    ),
    "large_amount": ({"min_amount": 1_000_000}, facts(amount_minor=1_000_000), facts()),
    "financial_monitoring_threshold": (
        {"min_amount": 1_000_000_00},
        facts(amount_minor=1_000_000_00),
        facts(amount_minor=999_999_99),
    ),
    "card_testing": (
        {"max_declines": 3},
        facts(small_declines_1h={"player": 0, "device": 3}),
        facts(small_declines_1h={"player": 2, "card": 2, "device": 2}),
    ),
    "multi_account_device": (
        {"max_other_identities": 2},
        facts(other_identities={"device": 2}),
        facts(other_identities={"device": 1, "card": 5}),
    ),
    "multi_account_card": (
        {"max_other_identities": 1},
        facts(other_identities={"card": 1}),
        facts(other_identities={"device": 3}),
    ),
    "multi_account_destination": (
        {"max_other_identities": 1},
        facts(other_identities={"destination": 1}),
        facts(other_identities={"destination": 0}),
    ),
    "low_turnover": (
        {"min_turnover_pct": 50, "min_deposits": 10_000_00},
        facts(deposits_lookback_minor=100_000_00, bets_lookback_minor=49_999_99),
        facts(deposits_lookback_minor=100_000_00, bets_lookback_minor=50_000_00),
    ),
    "destination_name_mismatch": (
        {},
        facts(destination_name_matches=False),
        facts(destination_name_matches=None),
    ),
    "card_not_used_for_deposit": (
        {},
        facts(destination_card_deposited=False),
        facts(destination_card_deposited=True),
    ),
    "new_payout_destination": (
        {},
        facts(destination_used_before=False),
        facts(destination_used_before=True),
    ),
    "new_device_large_amount": (
        {"min_amount": 100_000},
        facts(device_known=False),
        facts(device_known=True),
    ),
    "ip_country_change_large_amount": (
        {"min_amount": 100_000},
        facts(ip_country="RU", previous_ip_country="KZ"),
        facts(ip_country="KZ", previous_ip_country="KZ"),
    ),
    "card_country_not_allowed": (
        {"allowed_countries": ["KZ"]},
        facts(card_country="RU"),
        facts(card_country="KZ"),
    ),
    "ip_country_not_allowed": (
        {"allowed_countries": ["KZ"]},
        facts(ip_country="US"),
        facts(ip_country=None),
    ),
    "underage": ({"min_age": 21}, facts(player_age=20), facts(player_age=21)),
    "self_excluded": ({}, facts(self_excluded=True), facts(self_excluded=False)),
    "deposit_limit_exceeded": (
        {},
        facts(deposit_limits=(LimitUse("daily", 1_000_000, 500_001),)),
        facts(deposit_limits=(LimitUse("weekly", 1_000_000, 500_000),)),
    ),
    "blocklisted": (
        {},
        facts(list_hits=(ListHit("block", "iin", 1),)),
        facts(list_hits=(ListHit("allow", "iin", 1),)),
    ),
    "allowlisted": (
        {},
        facts(list_hits=(ListHit("allow", "device", 2),)),
        facts(list_hits=(ListHit("block", "device", 2),)),
    ),
    "card_holder_mismatch": (
        {},
        facts(card_holder_matches=False),
        facts(card_holder_matches=True),
    ),
    "missing_device": ({}, facts(missing_signals=("device",)), facts(missing_signals=("ip",))),
    "missing_ip": ({}, facts(missing_signals=("ip",)), facts(missing_signals=("device",))),
}
for _dim in DIMENSIONS:
    for _win in WINDOWS:
        _at = {"10m": "w10m", "1h": "w1h", "24h": "w24h"}[_win]
        CASES[velocity_code(_dim, "count", _win)] = (
            {"max": 5},
            facts(velocity={_dim: Velocity(**{_at: Window(count=5)})}),
            facts(velocity={_dim: Velocity(**{_at: Window(count=4)})}),
        )
        CASES[velocity_code(_dim, "sum", _win)] = (
            {"max": 1_000_000},
            facts(velocity={_dim: Velocity(**{_at: Window(count=1, sum_minor=500_001)})}),
            facts(velocity={_dim: Velocity(**{_at: Window(count=9, sum_minor=500_000)})}),
        )


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_fires(code: str) -> None:
    params, firing, _ = CASES[code]
    assert RULES[code].check(firing, cfg(**params)) is True


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_stays_quiet(code: str) -> None:
    params, _, quiet = CASES[code]
    assert RULES[code].check(quiet, cfg(**params)) is False


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_never_fires_on_unknown_facts(code: str) -> None:
    """The bare payment (no device, card, history) trips only the amount rules."""
    params, _, _ = CASES[code]
    fired = RULES[code].check(facts(amount_minor=500_000), cfg(**params))
    assert fired is (code == "amount_above_maximum")


def test_velocity_rules_of_other_dimensions_do_not_mix() -> None:
    crowded = facts(velocity={"ip": Velocity(w10m=Window(count=99))})
    assert RULES["velocity_ip_count_10m"].check(crowded, cfg(max=5))
    assert not RULES["velocity_device_count_10m"].check(crowded, cfg(max=5))
    assert not RULES["velocity_count_10m"].check(crowded, cfg(max=5))


# -- the engine ---------------------------------------------------------------------------------


def rule_set(deposit_rules: dict[str, Any], review: int = 50, decline: int = 120) -> Any:
    return parse_rule_set(
        {
            "version": "t1",
            "deposit": {"review_score": review, "decline_score": decline, "rules": deposit_rules},
        }
    )


def test_clean_payment_is_approved_with_the_version() -> None:
    decision = evaluate(facts(), load_rule_set(DEFAULT_RULES_PATH))
    assert decision.decision is RiskVerdict.APPROVE
    assert (decision.score, decision.reasons) == (0, ())
    assert decision.version == VERSION


def test_decline_action_declines_whatever_the_score() -> None:
    rules = rule_set({"self_excluded": {"action": "decline", "score": 0}})
    decision = evaluate(facts(self_excluded=True), rules)
    assert (decision.decision, decision.reasons) == (RiskVerdict.DECLINE, ("self_excluded",))


def test_review_action_and_scores_add_up() -> None:
    rules = rule_set(
        {
            "large_amount": {"action": "flag", "score": 30, "min_amount": 1},
            "card_country_not_allowed": {
                "action": "flag",
                "score": 30,
                "allowed_countries": ["KZ"],
            },
            "underage": {"action": "review", "score": 0, "min_age": 21},
        }
    )
    assert evaluate(facts(), rules).decision is RiskVerdict.APPROVE  # one flag: 30 < 50
    two_flags = evaluate(facts(card_country="RU"), rules)
    assert (two_flags.decision, two_flags.score) == (RiskVerdict.REVIEW, 60)
    assert evaluate(facts(player_age=18), rules).decision is RiskVerdict.REVIEW


def test_score_at_decline_threshold_declines_and_is_capped() -> None:
    rules = rule_set(
        {
            "large_amount": {"action": "flag", "score": 80, "min_amount": 1},
            "card_country_not_allowed": {
                "action": "flag",
                "score": 80,
                "allowed_countries": ["KZ"],
            },
        }
    )
    decision = evaluate(facts(card_country="US"), rules)
    assert (decision.decision, decision.score) == (RiskVerdict.DECLINE, 100)


def test_flag_only_records_a_reason() -> None:
    rules = load_rule_set(DEFAULT_RULES_PATH)
    decision = evaluate(facts(amount_minor=1_000_000_00), rules)
    assert decision.reasons == ("large_amount", "financial_monitoring_threshold")
    assert decision.decision is RiskVerdict.REVIEW  # large_amount reviews, the flag only reports


def test_the_first_rule_sets_codes_and_outcomes_are_kept() -> None:
    rules = load_rule_set(DEFAULT_RULES_PATH)
    low = evaluate(facts(amount_minor=50_00), rules)
    assert (low.decision, low.reasons) == (RiskVerdict.DECLINE, ("amount_below_minimum",))
    sixth = evaluate(facts(velocity={"player": Velocity(w10m=Window(5, 2_500_000))}), rules)
    assert (sixth.decision, sixth.reasons) == (RiskVerdict.DECLINE, ("velocity_count_10m",))


def test_withdrawals_use_their_own_rules() -> None:
    rules = load_rule_set(DEFAULT_RULES_PATH)
    payout = PaymentFacts(
        kind="withdrawal",
        amount_minor=300_000_00,
        currency="KZT",
        method="bank_transfer",
        deposits_lookback_minor=300_000_00,
        bets_lookback_minor=1_000_00,
        destination_name_matches=False,
        device_known=False,
    )
    decision = evaluate(payout, rules)
    assert decision.decision is RiskVerdict.DECLINE  # 60 + 60 + 50 >= 120
    assert decision.reasons == (
        "low_turnover",
        "destination_name_mismatch",
        "new_device_large_amount",
    )


# -- the rule file ------------------------------------------------------------------------------


def test_the_packaged_rule_file_loads() -> None:
    rules = load_rule_set(DEFAULT_RULES_PATH)
    assert rules.version
    assert "velocity_count_10m" in rules.deposit.rules
    assert "low_turnover" in rules.withdrawal.rules


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "version"),
        ({"version": "x", "deposit": {"rules": {"nope": {"action": "flag"}}}}, "no such rule"),
        (
            {"version": "x", "deposit": {"rules": {"underage": {"action": "flag", "score": 1}}}},
            "min_age",
        ),
        (
            {"version": "x", "deposit": {"rules": {"underage": {"action": "stop", "min_age": 1}}}},
            "action",
        ),
        (
            {
                "version": "x",
                "deposit": {"rules": {"underage": {"action": "flag", "min_age": "21"}}},
            },
            "integer",
        ),
        ({"version": "x", "deposit": {"review_score": 90, "decline_score": 10}}, "review_score"),
    ],
)
def test_malformed_rule_files_are_refused(document: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError, match=message):
        parse_rule_set(document)


def test_disabled_rule_does_not_run() -> None:
    rules = rule_set({"self_excluded": {"action": "decline", "score": 100, "enabled": False}})
    assert evaluate(facts(self_excluded=True), rules).decision is RiskVerdict.APPROVE


def test_overlay_merges_and_extends_the_version(tmp_path: Path) -> None:
    overlay = tmp_path / "o.toml"
    overlay.write_text('version = "site"\n[deposit.rules.amount_below_minimum]\nmin_amount = 1\n')
    rules = load_rule_set(DEFAULT_RULES_PATH, overlay)
    assert rules.version == f"{VERSION}+site"
    assert rules.deposit.rules["amount_below_minimum"].int("min_amount") == 1
    assert rules.deposit.rules["amount_below_minimum"].action == "decline"


def test_rule_source_follows_the_file_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    body = (
        'version = "v{n}"\n[deposit.rules.amount_below_minimum]\n'
        'action = "decline"\nscore = 100\nmin_amount = {m}\n'
    )
    path.write_text(body.format(n=1, m=100))
    source = RuleSource(path)
    assert evaluate(facts(amount_minor=150), source.current()).decision is RiskVerdict.APPROVE

    time.sleep(0.01)
    path.write_text(body.format(n=2, m=200))
    decision = evaluate(facts(amount_minor=150), source.current())
    assert (decision.decision, decision.version) == (RiskVerdict.DECLINE, "v2")

    path.write_text("version = [broken")
    assert source.current().version == "v2"
    assert source.last_error


# -- look-ups -----------------------------------------------------------------------------------


def test_ip_countries() -> None:
    assert ip_country("2.134.5.6") == "KZ"
    assert ip_country("95.57.1.1") == "KZ"
    assert ip_country("5.3.1.1") == "RU"
    assert ip_country("10.1.2.3") is None
    assert ip_country("not-an-ip") is None
    assert ip_country(None) is None


def test_bin_countries_prefer_the_providers_answer() -> None:
    assert bin_country("440563") == "KZ"
    assert bin_country("427600") == "RU"
    assert bin_country("999999") is None
    assert bin_country("427600", "kz") == "KZ"
    assert card_key("424242", "4242") == "424242:4242"
    assert card_key(None, "4242") is None


def test_names_match_across_scripts_and_order() -> None:
    assert names_match("Aigerim Tulegenova", "TULEGENOVA AIGERIM")
    assert names_match("Айгерим Тулегенова", "AIGERIM TULEGENOVA")
    assert names_match("Нұрлан Әбілқасымов", "Nurlan Abilkasymov")
    assert not names_match("Aigerim Tulegenova", "Ivan Petrov")
    assert not names_match("Aigerim Tulegenova", "AIGERIM")
    assert not names_match("Aigerim Tulegenova", "")


def test_destination_fingerprints_are_stable_and_scoped_by_method() -> None:
    # The API normalizes a destination (parse_kz_iban, the +77 phone) before it is fingerprinted.
    iban = "KZ86125KZT5004100100"
    assert destination_fingerprint("bank_transfer", iban) == destination_fingerprint(
        "bank_transfer", iban
    )
    assert destination_fingerprint("bank_transfer", iban) != destination_fingerprint(
        "ewallet", iban
    )
    assert len(destination_fingerprint("mobile_banking", "+77011234567")) == 32


def test_decision_json_carries_the_version() -> None:
    decision = evaluate(facts(), load_rule_set(DEFAULT_RULES_PATH))
    assert decision.as_json() == {
        "decision": "approve",
        "score": 0,
        "reasons": [],
        "version": VERSION,
    }
