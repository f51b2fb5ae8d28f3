"""The first risk rule set: amount bounds and per-player velocity.

Rules are pure functions of facts the caller gathered from the database, so a decision can be
replayed and tested without I/O. Each rule adds a reason code and a score; the worst verdict wins.
"""

from dataclasses import dataclass, field
from enum import StrEnum


class RiskVerdict(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


_SEVERITY = {RiskVerdict.APPROVE: 0, RiskVerdict.REVIEW: 1, RiskVerdict.DECLINE: 2}


@dataclass(frozen=True)
class RiskLimits:
    min_amount_minor: int
    max_amount_minor: int
    review_amount_minor: int
    max_count_10m: int
    max_sum_24h_minor: int


@dataclass(frozen=True)
class DepositFacts:
    """What the rules look at: this payment plus the player's recent history (excluding it)."""

    amount_minor: int
    count_10m: int
    sum_24h_minor: int


@dataclass(frozen=True)
class RiskHit:
    code: str
    score: int
    verdict: RiskVerdict


@dataclass(frozen=True)
class RiskDecision:
    decision: RiskVerdict
    score: int
    reasons: list[str] = field(default_factory=list)


def evaluate_deposit(facts: DepositFacts, limits: RiskLimits) -> RiskDecision:
    hits: list[RiskHit] = []
    if facts.amount_minor < limits.min_amount_minor:
        hits.append(RiskHit("amount_below_minimum", 100, RiskVerdict.DECLINE))
    if facts.amount_minor > limits.max_amount_minor:
        hits.append(RiskHit("amount_above_maximum", 100, RiskVerdict.DECLINE))
    elif facts.amount_minor >= limits.review_amount_minor:
        hits.append(RiskHit("large_amount", 40, RiskVerdict.REVIEW))
    if facts.count_10m + 1 > limits.max_count_10m:
        hits.append(RiskHit("velocity_count_10m", 80, RiskVerdict.DECLINE))
    if facts.sum_24h_minor + facts.amount_minor > limits.max_sum_24h_minor:
        hits.append(RiskHit("velocity_sum_24h", 60, RiskVerdict.REVIEW))
    verdict = max((hit.verdict for hit in hits), key=_SEVERITY.__getitem__, default=None)
    return RiskDecision(
        decision=verdict or RiskVerdict.APPROVE,
        score=min(100, sum(hit.score for hit in hits)),
        reasons=[hit.code for hit in hits],
    )
