"""Run the configured rules over the facts and combine the hits into one decision.

A hit whose action is `decline` declines; a total score at or over `decline_score` declines; a
`review` hit or a score at or over `review_score` sends the payment to review; `flag` hits only
record a reason (e.g. for financial-monitoring reporting). The reported score is capped at 100.
"""

from dataclasses import dataclass

from domain.fraud.config import Action, KindRules, RuleSet
from domain.fraud.facts import PaymentFacts
from domain.fraud.rules import RULES
from domain.risk import RiskVerdict


@dataclass(frozen=True)
class Hit:
    code: str
    action: Action
    score: int


@dataclass(frozen=True)
class Decision:
    decision: RiskVerdict
    score: int
    reasons: tuple[str, ...]
    version: str
    hits: tuple[Hit, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "decision": self.decision.value,
            "score": self.score,
            "reasons": list(self.reasons),
            "version": self.version,
        }


def evaluate(facts: PaymentFacts, rules: RuleSet) -> Decision:
    kind: KindRules = rules.deposit if facts.kind == "deposit" else rules.withdrawal
    hits = tuple(
        Hit(code, config.action, config.score)
        for code, config in kind.rules.items()
        if RULES[code].check(facts, config)
    )
    total = sum(hit.score for hit in hits)
    if any(hit.action == "decline" for hit in hits) or total >= kind.decline_score:
        verdict = RiskVerdict.DECLINE
    elif any(hit.action == "review" for hit in hits) or total >= kind.review_score:
        verdict = RiskVerdict.REVIEW
    else:
        verdict = RiskVerdict.APPROVE
    return Decision(
        decision=verdict,
        score=min(100, total),
        reasons=tuple(hit.code for hit in hits),
        version=rules.version,
        hits=hits,
    )


def evaluate_deposit(facts: PaymentFacts, rules: RuleSet) -> Decision:
    assert facts.kind == "deposit"
    return evaluate(facts, rules)


def evaluate_withdrawal(facts: PaymentFacts, rules: RuleSet) -> Decision:
    assert facts.kind == "withdrawal"
    return evaluate(facts, rules)
