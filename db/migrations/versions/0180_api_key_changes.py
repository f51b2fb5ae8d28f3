"""Every change to an API key is announced: `NOTIFY api_keys_changed, '<key id>'` (issue 21).

The API processes cache keys for a few seconds (api/hot_cache.py); a revoked, rotated or
expired-early key must stop working at once in all of them, however it was changed (the CLI,
a script, SQL by hand). The trigger runs in the changing transaction, so the notification is
delivered exactly when the change commits.

Revision ID: 0180
Revises: 0170
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0180"
down_revision: str | Sequence[str] | None = "0170"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION api_keys_notify_change() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp
        AS $$
        BEGIN
            PERFORM pg_notify('api_keys_changed', OLD.id);
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON api_keys "
        "FOR EACH ROW EXECUTE FUNCTION api_keys_notify_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_keys_changed ON api_keys")
    op.execute("DROP FUNCTION api_keys_notify_change()")
