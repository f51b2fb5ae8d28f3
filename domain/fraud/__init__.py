"""Anti-fraud and compliance rules: facts in, a versioned decision out, no I/O in the rules.

`config` loads the rule set (thresholds, scores, actions) from TOML, `facts` holds what the
database told us about a payment, `rules` holds each rule as a small named unit, and `engine`
combines the hits into approve, review or decline.
"""

from domain.fraud.config import RuleConfig, RuleSet, RuleSource, load_rule_set
from domain.fraud.engine import (
    Decision,
    Hit,
    RuleResult,
    evaluate,
    evaluate_deposit,
    evaluate_withdrawal,
)
from domain.fraud.facts import (
    ListHit,
    PaymentFacts,
    Velocity,
    Window,
    facts_from_json,
    facts_to_json,
)

__all__ = [
    "Decision",
    "Hit",
    "ListHit",
    "PaymentFacts",
    "RuleConfig",
    "RuleResult",
    "RuleSet",
    "RuleSource",
    "Velocity",
    "Window",
    "evaluate",
    "evaluate_deposit",
    "evaluate_withdrawal",
    "facts_from_json",
    "facts_to_json",
    "load_rule_set",
]
