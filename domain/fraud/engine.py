"""Run the configured rules over the facts and combine the hits into one decision.

Lists first: a block list hit declines whatever else holds; an allow list hit leaves only the
mandatory rules (law, the player's limits) to count, the others evaluated and stored as
`suppressed`. Then: a hit whose action is `decline` declines; a total score at or over
`decline_score` declines; a `review` hit or a score at or over `review_score` sends the payment
to review; `flag` hits only record a reason (e.g. for financial-monitoring reporting). A `shadow`
rule is evaluated and stored, never counted. The reported score is capped at 100.

Every configured rule's result is kept (`Decision.results`: hit or not, action, score, shadow,
suppressed) with the rule set's version label and content hash: the decision's explanation.
"""

from dataclasses import dataclass
from typing import Any

from domain.fraud.config import Action, KindRules, ReviewMode, RuleSet
from domain.fraud.facts import PaymentFacts
from domain.fraud.rules import RULES
from domain.risk import RiskVerdict


@dataclass(frozen=True)
class Hit:
    code: str
    action: Action
    score: int


@dataclass(frozen=True)
class RuleResult:
    """One configured rule on one payment: whether it fired and whether that counted."""

    code: str
    hit: bool
    action: Action
    score: int  # what it adds when it counts
    shadow: bool = False
    suppressed: bool = False  # fired, but an allow list names the payment

    @property
    def counts(self) -> bool:
        return self.hit and not self.shadow and not self.suppressed

    def as_json(self) -> dict[str, Any]:
        return {  # as dataclasses.asdict, without its deep copies (one per rule, per payment)
            "code": self.code,
            "hit": self.hit,
            "action": self.action,
            "score": self.score,
            "shadow": self.shadow,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class Decision:
    decision: RiskVerdict
    score: int
    reasons: tuple[str, ...]
    version: str
    hits: tuple[Hit, ...] = ()
    results: tuple[RuleResult, ...] = ()
    rules_hash: str = ""
    review_mode: ReviewMode = "hold"

    @property
    def shadow_hits(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.results if r.hit and r.shadow)

    def as_json(self) -> dict[str, object]:
        """What the payment shows as its `risk` (the whole explanation: GET /v1/risk/decisions)."""
        return {
            "decision": self.decision.value,
            "score": self.score,
            "reasons": list(self.reasons),
            "version": self.version,
        }


_LISTS = ("blocklisted", "allowlisted")


def evaluate(facts: PaymentFacts, rules: RuleSet) -> Decision:
    kind: KindRules = rules.deposit if facts.kind == "deposit" else rules.withdrawal
    ordered = [c for c in _LISTS if c in kind.rules] + [c for c in kind.rules if c not in _LISTS]
    fired = {code: RULES[code].check(facts, kind.rules[code]) for code in ordered}
    allowed = (
        fired.get("allowlisted", False)
        and not kind.rules["allowlisted"].shadow
        and not (fired.get("blocklisted", False) and not kind.rules["blocklisted"].shadow)
    )
    results = tuple(
        RuleResult(
            code=code,
            hit=fired[code],
            action=kind.rules[code].action,
            score=kind.rules[code].score,
            shadow=kind.rules[code].shadow,
            suppressed=fired[code] and allowed and not RULES[code].mandatory,
        )
        for code in ordered
    )
    hits = tuple(Hit(r.code, r.action, r.score) for r in results if r.counts)
    total = sum(hit.score for hit in hits)
    # A block list hit is mandatory and declines (its action, whatever the file says).
    blocked = any(hit.code == "blocklisted" for hit in hits)
    if blocked or any(hit.action == "decline" for hit in hits) or total >= kind.decline_score:
        verdict = RiskVerdict.DECLINE
    elif allowed:
        verdict = RiskVerdict.APPROVE  # mandatory rules that decline were handled above
        if any(hit.action == "review" for hit in hits if RULES[hit.code].mandatory):
            verdict = RiskVerdict.REVIEW
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
        results=results,
        rules_hash=rules.content_hash,
        review_mode=kind.review_mode,
    )


def evaluate_deposit(facts: PaymentFacts, rules: RuleSet) -> Decision:
    assert facts.kind == "deposit"
    return evaluate(facts, rules)


def evaluate_withdrawal(facts: PaymentFacts, rules: RuleSet) -> Decision:
    assert facts.kind == "withdrawal"
    return evaluate(facts, rules)
