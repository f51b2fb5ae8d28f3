"""Reconciliation cases for a provider's settlement no bank statement showed in time.

A provider's reconciliation run books the day's net to the operator's bank account; when no
bank statement shows that money within `recon_settlement_grace_days` business days of the
report's settlement date, the provider day becomes a `settlement_missing_at_bank` case (one per
provider day, closed by itself when a statement shows it).

Revision ID: 0240
Revises: 0230
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0240"
down_revision: str | Sequence[str] | None = "0230"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = (
    "'missing_ours', 'missing_provider', 'amount_mismatch', 'currency_mismatch', "
    "'fee_mismatch', 'duplicate', 'unknown_reference', 'short_payment', 'over_payment', "
    "'late_payment', 'chargeback', 'chargeback_reversal', 'settlement_unmatched', "
    "'settlement_mismatch'"
)


def upgrade() -> None:
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_kind_check, "
        f"ADD CONSTRAINT recon_cases_kind_check CHECK (kind IN ({_KINDS}, "
        "'settlement_missing_at_bank'))"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM recon_case_actions WHERE case_id IN (SELECT id FROM recon_cases "
        "WHERE kind = 'settlement_missing_at_bank')"
    )
    op.execute("DELETE FROM recon_cases WHERE kind = 'settlement_missing_at_bank'")
    op.execute(
        "ALTER TABLE recon_cases DROP CONSTRAINT recon_cases_kind_check, "
        f"ADD CONSTRAINT recon_cases_kind_check CHECK (kind IN ({_KINDS}))"
    )
