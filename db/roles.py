"""The PostgreSQL roles of the payments database (migration 0130 grants them; README: "Least
privilege in PostgreSQL").

- *owner* (`PAY_DB_OWNER_ROLE`, `kzpay_owner`): owns the schema's tables and functions; the
  migrations run as it. Nothing else connects as it.
- *app* (`PAY_DB_APP_ROLE`, `kzpay_app`): the API, the workers and `python -m api.keys`. Reads
  and writes the payment tables; on the ledger (`LEDGER_TABLES`) it has SELECT alone and writes
  only through the posting functions (`LEDGER_FUNCTIONS`, SECURITY DEFINER), so it cannot change
  or delete an entry, truncate, move a balance by hand, or disable a trigger (not an owner).
- *analytics* (`PAY_DB_ANALYTICS_ROLE`, `kzpay_analytics`): SELECT on every table but the
  credentials (`api_keys`), and nothing else.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings

# Written only by the posting functions: the app role may read them, never write them directly.
LEDGER_TABLES = ("ledger_transactions", "ledger_entries", "ledger_accounts", "wallet_daily_totals")
# The posting functions: SECURITY DEFINER (they run as the owner) with a fixed search_path.
LEDGER_FUNCTIONS = ("ledger_post_try", "ledger_post", "ledger_post_batch")
# Tables analytics may not read.
CREDENTIAL_TABLES = ("api_keys",)


@dataclass(frozen=True)
class DatabaseRoles:
    owner: str
    app: str
    analytics: str

    @classmethod
    def from_settings(cls, settings: "Settings") -> "DatabaseRoles":
        return cls(settings.db_owner_role, settings.db_app_role, settings.db_analytics_role)

    @classmethod
    def defaults(cls) -> "DatabaseRoles":
        from config.settings import Settings

        fields = Settings.model_fields
        return cls(
            str(fields["db_owner_role"].default),
            str(fields["db_app_role"].default),
            str(fields["db_analytics_role"].default),
        )
