"""`ledger_post_batch`: many independent postings in one statement (group commit).

Revision ID: 0031
Revises: 0030
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Group commit: many independent postings in one statement, so one transaction and one WAL
# flush. All the batch's accounts are locked in code order first (batches cannot deadlock on
# them); each posting runs in its own subtransaction, so a refused one (insufficient funds, key
# conflict, ...) is reported on its own row and undoes only itself.
_POST_BATCH = r"""
CREATE OR REPLACE FUNCTION ledger_post_batch(p_items jsonb)
RETURNS TABLE (idx int, tx_id bigint, created boolean, error_state text, error_message text)
LANGUAGE plpgsql AS $$
DECLARE
    v_item jsonb;
    v_result record;
BEGIN
    PERFORM 1 FROM ledger_accounts
    WHERE code IN (SELECT e->>'code' FROM jsonb_array_elements(p_items) i,
                   jsonb_array_elements(i->'entries') e)
    ORDER BY code FOR UPDATE;
    idx := 0;
    FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
        BEGIN
            SELECT * INTO v_result FROM ledger_post(
                v_item->>'key', v_item->>'kind', v_item->>'payment_id', v_item->>'hash',
                v_item->>'phase', v_item->>'pending_key', (v_item->>'amount')::bigint,
                CASE WHEN jsonb_typeof(v_item->'accounts') = 'array'
                     THEN v_item->'accounts' END,
                v_item->'entries');
            tx_id := v_result.tx_id;
            created := v_result.created;
            error_state := NULL;
            error_message := NULL;
        EXCEPTION
            WHEN SQLSTATE 'LG409' OR SQLSTATE 'LG402' OR SQLSTATE 'LG404'
                 OR SQLSTATE 'LG410' OR SQLSTATE 'LG422' THEN
                tx_id := NULL;
                created := NULL;
                GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE,
                                        error_message = MESSAGE_TEXT;
        END;
        RETURN NEXT;
        idx := idx + 1;
    END LOOP;
END $$;
"""


def upgrade() -> None:
    op.execute(_POST_BATCH)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ledger_post_batch(jsonb)")
