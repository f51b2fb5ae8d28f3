"""Reconciliation: providers' reports and bank statements matched with our records.

- `recon_reports`: each report once per (provider, business day, content hash), fetched or
  uploaded, with its header figures; `recon_report_lines` holds its lines as parsed (the
  evidence a case points at; `reference` is indexed for cut-off matches across days).
- `recon_runs`: one run per report (so idempotent per provider, day and report hash), with
  counts and amounts per outcome and how the day's clearing was settled; a corrected report's
  run supersedes the earlier one (`status = 'superseded'`, `superseded_by`).
- `recon_supersessions`: the audit trail of each supersession: which run, which hashes, the
  reversed settlement and how many cases no longer applied.
- `recon_cases`: every discrepancy, once per (provider, day, kind, reference, line identity):
  a re-run opens no duplicates; the "cases" part resolves them (status, resolution, approvals).
- `recon_postings`: the ledger transactions a reconciliation dates to a business day (the
  settlement of day D is posted later but belongs to D): `db.check_ledger --through` reads it.

Revision ID: 0110
Revises: 0100
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0110"
down_revision: str | None = "0100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE recon_reports (
            id bigserial PRIMARY KEY,
            provider varchar(64) NOT NULL,
            business_date date NOT NULL,
            content_hash varchar(64) NOT NULL,
            source varchar(16) NOT NULL CHECK (source IN ('fetched', 'uploaded')),
            format varchar(64) NOT NULL,
            currency varchar(3) NOT NULL,
            net_settled_minor bigint NOT NULL,
            settlement_date date,
            line_count integer NOT NULL DEFAULT 0,
            raw_sha256 varchar(64),
            raw_size bigint,
            filename varchar(200),
            received_by varchar(100),
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_recon_report UNIQUE (provider, business_date, content_hash)
        );

        CREATE TABLE recon_report_lines (
            report_id bigint NOT NULL REFERENCES recon_reports(id) ON DELETE CASCADE,
            line_no integer NOT NULL,
            kind varchar(32) NOT NULL,
            reference text,
            provider_id text,
            amount_minor bigint NOT NULL,
            currency varchar(3) NOT NULL,
            fee_minor bigint NOT NULL DEFAULT 0,
            occurred_at timestamptz NOT NULL,
            purpose text,
            payer_name text,
            payer_iin text,
            payer_iban text,
            PRIMARY KEY (report_id, line_no)
        );
        CREATE INDEX ix_recon_report_lines_reference
            ON recon_report_lines (reference) WHERE reference IS NOT NULL;

        CREATE TABLE recon_runs (
            id bigserial PRIMARY KEY,
            provider varchar(64) NOT NULL,
            business_date date NOT NULL,
            report_id bigint NOT NULL REFERENCES recon_reports(id),
            report_hash varchar(64) NOT NULL,
            status varchar(16) NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'matched', 'completed', 'superseded')),
            superseded_by bigint REFERENCES recon_runs(id),
            workflow_id varchar(120),
            requested_by varchar(100),
            currency varchar(3) NOT NULL,
            outcomes jsonb NOT NULL DEFAULT '{}',
            line_count integer NOT NULL DEFAULT 0,
            matched_count integer NOT NULL DEFAULT 0,
            matched_minor bigint NOT NULL DEFAULT 0,
            unmatched_count integer NOT NULL DEFAULT 0,
            unmatched_minor bigint NOT NULL DEFAULT 0,
            cases_opened integer NOT NULL DEFAULT 0,
            fees_reported_minor bigint NOT NULL DEFAULT 0,
            fees_expected_minor bigint NOT NULL DEFAULT 0,
            net_settled_minor bigint NOT NULL DEFAULT 0,
            clearing_minor bigint NOT NULL DEFAULT 0,
            fee_delta_minor bigint NOT NULL DEFAULT 0,
            difference_minor bigint NOT NULL DEFAULT 0,
            settlement_key varchar(200),
            settlement_transaction_id bigint REFERENCES ledger_transactions(id),
            details jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            CONSTRAINT uq_recon_run UNIQUE (provider, business_date, report_hash)
        );
        CREATE INDEX ix_recon_runs_day ON recon_runs (provider, business_date, id);
        CREATE INDEX ix_recon_runs_created ON recon_runs (created_at);

        CREATE TABLE recon_supersessions (
            id bigserial PRIMARY KEY,
            provider varchar(64) NOT NULL,
            business_date date NOT NULL,
            old_run_id bigint NOT NULL REFERENCES recon_runs(id),
            new_run_id bigint NOT NULL REFERENCES recon_runs(id),
            old_report_hash varchar(64) NOT NULL,
            new_report_hash varchar(64) NOT NULL,
            reversal_key varchar(220),
            reversal_transaction_id bigint REFERENCES ledger_transactions(id),
            cases_closed integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT uq_recon_supersession UNIQUE (old_run_id)
        );

        CREATE TABLE recon_cases (
            id bigserial PRIMARY KEY,
            run_id bigint REFERENCES recon_runs(id),
            provider varchar(64) NOT NULL,
            business_date date NOT NULL,
            kind varchar(32) NOT NULL CHECK (kind IN (
                'missing_ours', 'missing_provider', 'amount_mismatch', 'currency_mismatch',
                'fee_mismatch', 'duplicate', 'unknown_reference', 'short_payment',
                'over_payment', 'late_payment', 'chargeback', 'chargeback_reversal')),
            reference text,
            line_key varchar(200) NOT NULL DEFAULT '',
            line_no integer,
            amount_minor bigint NOT NULL,
            currency varchar(3) NOT NULL,
            details jsonb NOT NULL DEFAULT '{}',
            status varchar(16) NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
            resolution varchar(64),
            resolved_by varchar(100),
            resolved_at timestamptz,
            approvals jsonb NOT NULL DEFAULT '[]',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX uq_recon_case
            ON recon_cases (provider, business_date, kind, (coalesce(reference, '')), line_key);
        CREATE INDEX ix_recon_cases_status ON recon_cases (status, created_at);
        CREATE INDEX ix_recon_cases_day ON recon_cases (provider, business_date);
        CREATE INDEX ix_recon_cases_reference
            ON recon_cases (reference) WHERE reference IS NOT NULL AND status = 'open';

        CREATE TABLE recon_postings (
            ledger_transaction_id bigint PRIMARY KEY REFERENCES ledger_transactions(id),
            ledger_key varchar(220) NOT NULL UNIQUE,
            run_id bigint REFERENCES recon_runs(id),
            provider varchar(64) NOT NULL,
            business_date date NOT NULL,
            purpose varchar(32) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ix_recon_postings_day ON recon_postings (business_date);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE recon_postings; DROP TABLE recon_cases; DROP TABLE recon_supersessions; "
        "DROP TABLE recon_runs; DROP TABLE recon_report_lines; DROP TABLE recon_reports;"
    )
