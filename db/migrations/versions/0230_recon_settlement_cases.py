"""Reconciliation cases for the providers' settlements on the bank statement.

A provider's settlement the operator's bank statement shows is checked against that provider's
reconciliation run of the day it names (domain/recon/match.py): one no run settled is a
`settlement_unmatched` case, one of another amount a `settlement_mismatch` case.

Revision ID: 0230
Revises: 0210
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0230"
down_revision: str | Sequence[str] | None = "0210"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = (
    "'missing_ours', 'missing_provider', 'amount_mismatch', 'currency_mismatch', "
    "'fee_mismatch', 'duplicate', 'unknown_reference', 'short_payment', 'over_payment', "
    "'late_payment', 'chargeback', 'chargeback_reversal'"
)
_SETTLEMENT_KINDS = "'settlement_unmatched', 'settlement_mismatch'"


def upgrade() -> None:
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_kind_check, "
        f"ADD CONSTRAINT recon_cases_kind_check CHECK (kind IN ({_KINDS}, {_SETTLEMENT_KINDS}))"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM recon_case_actions WHERE case_id IN (SELECT id FROM recon_cases "
        "WHERE kind IN ('settlement_unmatched', 'settlement_mismatch'))"
    )
    op.execute(
        "DELETE FROM recon_cases WHERE kind IN ('settlement_unmatched', 'settlement_mismatch')"
    )
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_kind_check, "
        f"ADD CONSTRAINT recon_cases_kind_check CHECK (kind IN ({_KINDS}))"
    )
