"""Run Alembic migrations programmatically: the launcher and the tests both call `upgrade`."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import normalize_url

_HERE = Path(__file__).resolve().parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.set_main_option("sqlalchemy.url", normalize_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    # "heads": independent features add migrations on branches off the same parent
    # (e.g. withdrawals and fraud both revise 0002); all of them apply.
    command.upgrade(alembic_config(database_url), "heads")
