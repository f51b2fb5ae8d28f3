"""A ledger key can be claimed without a posting (a rollback that arrives before its bet), and
group commit answers balances in the batch's own statement.

Game platforms send a bet's rollback when they gave up waiting for the bet's answer, and the
bet itself may still be on its way. The wallet API (api/routers/wallet.py) must then remember
the rollback, so that the bet, when it comes, is refused and the wallet never debited.

`ledger_claim_key` writes a marker under the bet's ledger key: a `ledger_transactions` row with
no entries (it moves no money and every ledger invariant holds). It first takes the lock every
posting on the player's wallet takes (`ledger_post_try`, `ledger_post_batch`: the account row,
FOR UPDATE), then inserts the marker unless the key exists. So either the bet was posted
before (the marker is not written, its kind is answered, and the rollback reverses it), or the
bet is posted after and finds its key taken with other content (LG409), which the wallet API
answers as a bet that was rolled back. Like the posting functions it runs as the owner (the
application may not write the ledger's tables itself).

Revision ID: 0210
Revises: 0200
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0210"
down_revision: str | Sequence[str] | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CLAIM = r"""
CREATE FUNCTION ledger_claim_key(p_key text, p_kind text, p_hash text, p_lock_code text)
RETURNS TABLE (claimed boolean, kind text)
LANGUAGE plpgsql AS $$
BEGIN
    -- Each statement below sees what committed before it started (READ COMMITTED): a posting
    -- of p_key that held this lock has committed by the time the INSERT looks for the key.
    PERFORM 1 FROM ledger_accounts WHERE code = p_lock_code FOR UPDATE;
    INSERT INTO ledger_transactions (key, kind, payment_id, content_hash, phase)
    VALUES (p_key, p_kind, NULL, p_hash, 'posted')
    ON CONFLICT (key) DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT true, p_kind;
    ELSE
        RETURN QUERY SELECT false, t.kind::text FROM ledger_transactions t WHERE t.key = p_key;
    END IF;
END $$;
"""

# Group commit's statement (db.ledger.LedgerBatcher): the batch, then the available balances
# of the accounts its callers asked about, read after the batch's writes in the same
# transaction. It was two statements, one round trip each, per batch. As the invoker: it only
# calls `ledger_post_batch` and reads `ledger_accounts`, both the application's to use.
_BATCH_BALANCES = r"""
CREATE FUNCTION ledger_post_batch_balances(p_items jsonb, p_codes text[])
RETURNS TABLE (idx int, tx_id bigint, created boolean, error_state text, error_message text,
               code text, available bigint)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        SELECT b.idx, b.tx_id, b.created, b.error_state, b.error_message, NULL::text,
               NULL::bigint
        FROM ledger_post_batch(p_items) b;
    RETURN QUERY
        SELECT NULL::int, NULL::bigint, NULL::boolean, NULL::text, NULL::text, a.code::text,
               (a.posted_credits - a.posted_debits - a.pending_debits)::bigint
        FROM ledger_accounts a WHERE a.code = ANY (p_codes);
END $$;
"""


def upgrade() -> None:
    op.execute(_CLAIM)
    op.execute(_BATCH_BALANCES)
    op.execute(
        "ALTER FUNCTION ledger_post_batch_balances(jsonb, text[]) "
        "SET plan_cache_mode = force_generic_plan"
    )
    op.execute("REVOKE ALL ON FUNCTION ledger_post_batch_balances(jsonb, text[]) FROM PUBLIC")
    # As 0130 made the posting functions: run as the owner, with a search_path nobody else can
    # shadow; EXECUTE is the application's (0130's default privileges), never PUBLIC's.
    op.execute(
        "DO $$ BEGIN EXECUTE format('ALTER FUNCTION ledger_claim_key(text, text, text, text) "
        "SECURITY DEFINER SET search_path = %I, pg_temp', current_schema()); END $$"
    )
    op.execute("REVOKE ALL ON FUNCTION ledger_claim_key(text, text, text, text) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_post_batch_balances(jsonb, text[])")
    op.execute("DROP FUNCTION ledger_claim_key(text, text, text, text)")
