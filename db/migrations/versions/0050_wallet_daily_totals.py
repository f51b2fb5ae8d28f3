"""Running per-wallet, per-day totals of game bets and deposit credits for the cycling rule.

`wallet_daily_totals` holds, per player wallet and UTC day, the sum of the wallet's entries of
`game_bet` and `deposit_credit` transactions. A statement-level trigger on `ledger_entries`
keeps it in the same database transaction as the posting (one upsert per posting statement,
only for those two kinds), so the withdrawal risk check reads at most ~31 rows instead of summing
thousands of ledger entries. Existing postings are backfilled.

`ix_ledger_entries_account_tx` (0010) existed only for the old turnover query; it duplicated
0002's `ix_ledger_entries_account_id_id` for every other reader and made every posting maintain
one more index, so it is dropped. `ix_withdrawals_paid_destination` answers "was this player
paid out to this destination before" (the `new_payout_destination` rule) and
`ix_fraud_decisions_card_player` "has the player deposited with this card".

Revision ID: 0050
Revises: 0040
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0050"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
# The ledger tables and 0010's index must exist first (they are on other branches).
depends_on: str | Sequence[str] | None = ("0010", "0031")

_TOTALS = """
SELECT e.account_id, (t.created_at AT TIME ZONE 'UTC')::date AS day,
       coalesce(sum(e.amount_minor) FILTER (WHERE t.kind = 'game_bet'), 0) AS bets_minor,
       coalesce(sum(e.amount_minor) FILTER (WHERE t.kind = 'deposit_credit'), 0) AS deposits_minor
FROM {entries} e
JOIN ledger_transactions t ON t.id = e.transaction_id
JOIN ledger_accounts a ON a.id = e.account_id
WHERE t.kind IN ('game_bet', 'deposit_credit') AND a.type = 'player_wallet'
GROUP BY 1, 2
"""

_FUNCTION = f"""
CREATE FUNCTION wallet_daily_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO wallet_daily_totals AS w (account_id, day, bets_minor, deposits_minor)
    {_TOTALS.format(entries="new_entries")}
    ON CONFLICT (account_id, day) DO UPDATE SET
        bets_minor = w.bets_minor + excluded.bets_minor,
        deposits_minor = w.deposits_minor + excluded.deposits_minor;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "wallet_daily_totals",
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("bets_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("deposits_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("account_id", "day"),
    )
    op.execute(_FUNCTION)
    # Lock out postings while the backfill reads, so none is counted twice or missed.
    op.execute("LOCK TABLE ledger_entries IN SHARE MODE")
    op.execute(
        "CREATE TRIGGER wallet_daily_totals_on_entries AFTER INSERT ON ledger_entries "
        "REFERENCING NEW TABLE AS new_entries "
        "FOR EACH STATEMENT EXECUTE FUNCTION wallet_daily_totals_add()"
    )
    op.execute(
        "INSERT INTO wallet_daily_totals (account_id, day, bets_minor, deposits_minor) "
        + _TOTALS.format(entries="ledger_entries")
    )
    op.drop_index("ix_ledger_entries_account_tx", table_name="ledger_entries")
    # "Paid out to this destination before" (new_payout_destination): an index-only count.
    op.create_index(
        "ix_withdrawals_paid_destination",
        "withdrawals",
        ["player_id", "destination_fingerprint"],
        postgresql_where=sa.text("status = 'paid'"),
    )
    # "Has the player deposited with this card" (card_not_used_for_deposit): an index scan that
    # stops at the first succeeded deposit, however long the card's history.
    op.create_index(
        "ix_fraud_decisions_card_player",
        "fraud_decisions",
        ["card_key", "player_id"],
        postgresql_where=sa.text("kind = 'deposit' AND card_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_fraud_decisions_card_player", table_name="fraud_decisions")
    op.drop_index("ix_withdrawals_paid_destination", table_name="withdrawals")
    op.create_index(
        "ix_ledger_entries_account_tx",
        "ledger_entries",
        ["account_id", "transaction_id"],
        postgresql_include=["amount_minor", "side"],
    )
    op.execute("DROP TRIGGER wallet_daily_totals_on_entries ON ledger_entries")
    op.execute("DROP FUNCTION wallet_daily_totals_add()")
    op.drop_table("wallet_daily_totals")
