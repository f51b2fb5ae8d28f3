"""The verdict every risk decision ends in. The rules themselves are the fraud engine's
(`domain/fraud/`, configured in `config/fraud_rules.toml`)."""

from enum import StrEnum


class RiskVerdict(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"
