"""Two-phase ledger: pending transfers, post/void exactly once, posting in one round trip.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Custom SQLSTATEs the Python side maps to its exceptions (db/ledger.py).
_POST_FUNCTION = r"""
CREATE FUNCTION ledger_post(
    p_key text, p_kind text, p_payment_id text, p_hash text, p_phase text,
    p_pending_key text, p_amount bigint, p_accounts jsonb, p_entries jsonb
) RETURNS TABLE (tx_id bigint, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_existing record;
    v_pending_id bigint := NULL;
    v_tx bigint;
    v_pending_amount bigint;
    v_breach text;
BEGIN
    -- Accounts the posting touches exist, then are locked in code order (no deadlocks).
    IF p_accounts IS NOT NULL AND jsonb_array_length(p_accounts) > 0 THEN
        INSERT INTO ledger_accounts (code, type, currency, owner_id,
                                     debits_must_not_exceed_credits,
                                     posted_debits, posted_credits, pending_debits, pending_credits)
        SELECT a->>'code', a->>'type', a->>'currency', a->>'owner_id',
               (a->>'flag')::boolean, 0, 0, 0, 0
        FROM jsonb_array_elements(p_accounts) a
        WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts x WHERE x.code = a->>'code')
        ON CONFLICT (code) DO NOTHING;
    END IF;

    IF p_phase IN ('post_pending', 'void_pending') THEN
        SELECT t.id INTO v_pending_id
        FROM ledger_transactions t WHERE t.key = p_pending_key AND t.phase = 'pending';
        IF v_pending_id IS NULL THEN
            RAISE EXCEPTION 'no pending transfer %', p_pending_key USING ERRCODE = 'LG404';
        END IF;
        PERFORM 1 FROM ledger_accounts
        WHERE id IN (SELECT account_id FROM ledger_entries WHERE transaction_id = v_pending_id)
        ORDER BY code FOR UPDATE;
    ELSE
        PERFORM 1 FROM ledger_accounts
        WHERE code IN (SELECT e->>'code' FROM jsonb_array_elements(p_entries) e)
        ORDER BY code FOR UPDATE;
    END IF;

    -- The key is checked under the locks, so a concurrent duplicate sees the first commit.
    SELECT t.id, t.content_hash INTO v_existing FROM ledger_transactions t WHERE t.key = p_key;
    IF FOUND THEN
        IF v_existing.content_hash <> p_hash THEN
            RAISE EXCEPTION 'key % was posted with other content', p_key USING ERRCODE = 'LG409';
        END IF;
        RETURN QUERY SELECT v_existing.id, false;
        RETURN;
    END IF;

    IF p_phase IN ('post_pending', 'void_pending') THEN
        IF EXISTS (SELECT 1 FROM ledger_transactions WHERE pending_id = v_pending_id) THEN
            RAISE EXCEPTION 'pending transfer % is already resolved', p_pending_key
                USING ERRCODE = 'LG410';
        END IF;
        SELECT max(amount_minor) INTO v_pending_amount
        FROM ledger_entries WHERE transaction_id = v_pending_id;
        IF p_phase = 'post_pending' AND (p_amount <= 0 OR p_amount > v_pending_amount) THEN
            RAISE EXCEPTION 'cannot post % of pending %', p_amount, v_pending_amount
                USING ERRCODE = 'LG422';
        END IF;
    END IF;

    INSERT INTO ledger_transactions (key, kind, payment_id, content_hash, phase, pending_id)
    VALUES (p_key, p_kind, p_payment_id, p_hash, p_phase,
            CASE WHEN p_phase IN ('post_pending', 'void_pending') THEN v_pending_id END)
    RETURNING id INTO v_tx;

    IF p_phase IN ('posted', 'pending') THEN
        INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency)
        SELECT v_tx, a.id, e->>'side', (e->>'amount')::bigint, a.currency
        FROM jsonb_array_elements(p_entries) e JOIN ledger_accounts a ON a.code = e->>'code';
    ELSIF p_phase = 'post_pending' THEN
        INSERT INTO ledger_entries (transaction_id, account_id, side, amount_minor, currency)
        SELECT v_tx, account_id, side, p_amount, currency
        FROM ledger_entries WHERE transaction_id = v_pending_id;
    END IF;

    -- Move the cached counters.
    IF p_phase IN ('post_pending', 'void_pending') THEN
        UPDATE ledger_accounts a SET
            pending_debits = a.pending_debits
                - CASE WHEN e.side = 'D' THEN e.amount_minor ELSE 0 END,
            pending_credits = a.pending_credits
                - CASE WHEN e.side = 'C' THEN e.amount_minor ELSE 0 END
        FROM ledger_entries e WHERE e.transaction_id = v_pending_id AND a.id = e.account_id;
    END IF;
    IF p_phase = 'pending' THEN
        UPDATE ledger_accounts a SET
            pending_debits = a.pending_debits + s.debits,
            pending_credits = a.pending_credits + s.credits
        FROM (SELECT account_id,
                     sum(CASE WHEN side = 'D' THEN amount_minor ELSE 0 END) AS debits,
                     sum(CASE WHEN side = 'C' THEN amount_minor ELSE 0 END) AS credits
              FROM ledger_entries WHERE transaction_id = v_tx GROUP BY account_id) s
        WHERE a.id = s.account_id;
    ELSIF p_phase IN ('posted', 'post_pending') THEN
        UPDATE ledger_accounts a SET
            posted_debits = a.posted_debits + s.debits,
            posted_credits = a.posted_credits + s.credits
        FROM (SELECT account_id,
                     sum(CASE WHEN side = 'D' THEN amount_minor ELSE 0 END) AS debits,
                     sum(CASE WHEN side = 'C' THEN amount_minor ELSE 0 END) AS credits
              FROM ledger_entries WHERE transaction_id = v_tx GROUP BY account_id) s
        WHERE a.id = s.account_id;
    END IF;

    SELECT a.code INTO v_breach FROM ledger_accounts a
    WHERE a.debits_must_not_exceed_credits
      AND a.posted_debits + a.pending_debits > a.posted_credits
      AND a.id IN (SELECT account_id FROM ledger_entries
                   WHERE transaction_id IN (v_tx, v_pending_id))
    LIMIT 1;
    IF v_breach IS NOT NULL THEN
        RAISE EXCEPTION 'insufficient funds on %', v_breach USING ERRCODE = 'LG402';
    END IF;

    RETURN QUERY SELECT v_tx, true;
END $$;
"""


def upgrade() -> None:
    op.add_column(
        "ledger_transactions",
        sa.Column("phase", sa.String(16), nullable=False, server_default="posted"),
    )
    op.add_column(
        "ledger_transactions",
        sa.Column("pending_id", sa.BigInteger, sa.ForeignKey("ledger_transactions.id")),
    )
    # A pending transfer is resolved (posted or voided) at most once, enforced by the database.
    op.create_index(
        "uq_ledger_transactions_pending_id", "ledger_transactions", ["pending_id"], unique=True
    )
    op.create_check_constraint(
        "ledger_transaction_phase",
        "ledger_transactions",
        "phase IN ('posted', 'pending', 'post_pending', 'void_pending')",
    )
    op.create_check_constraint(
        "ledger_account_counters_non_negative",
        "ledger_accounts",
        "posted_debits >= 0 AND posted_credits >= 0 AND pending_debits >= 0 "
        "AND pending_credits >= 0",
    )
    op.create_index("ix_ledger_entries_account_id_id", "ledger_entries", ["account_id", "id"])
    op.execute(_POST_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ledger_post")
    op.drop_index("ix_ledger_entries_account_id_id", "ledger_entries")
    op.drop_constraint("ledger_account_counters_non_negative", "ledger_accounts")
    op.drop_constraint("ledger_transaction_phase", "ledger_transactions")
    op.drop_index("uq_ledger_transactions_pending_id", "ledger_transactions")
    op.drop_column("ledger_transactions", "pending_id")
    op.drop_column("ledger_transactions", "phase")
