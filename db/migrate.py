"""Run Alembic migrations programmatically: the launcher and the tests both call `upgrade`."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import normalize_url
from db.roles import DatabaseRoles

_HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str, roles: DatabaseRoles | None = None) -> Config:
    """`roles`: the PostgreSQL roles migration 0130 grants (default: the settings' defaults)."""
    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    config.attributes["roles"] = roles or DatabaseRoles.defaults()
    return config


def upgrade(database_url: str, roles: DatabaseRoles | None = None) -> None:
    # "heads": independent features add migrations on branches off the same parent
    # (e.g. withdrawals and fraud both revise 0002); all of them apply.
    command.upgrade(alembic_config(database_url, roles), "heads")


def main() -> None:
    """`python -m db.migrate`: apply the migrations to PAY_DATABASE_URL (a one-shot job)."""
    import logging

    from config import get_settings
    from config.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    if not settings.database_url:
        raise SystemExit("PAY_DATABASE_URL is not set: nothing to migrate")
    upgrade(settings.database_url, DatabaseRoles.from_settings(settings))
    logging.getLogger("db.migrate").info("migrations applied")


if __name__ == "__main__":
    main()
