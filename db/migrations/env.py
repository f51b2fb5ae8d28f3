"""Alembic environment: the URL comes from the config `db.migrate` builds from settings."""

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from db.models import Base
from db.roles import DatabaseRoles

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "db.migrate.alembic_config sets sqlalchemy.url"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _as_owner(connection)
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def _as_owner(connection: Connection) -> None:
    """Once 0130 has given this database's objects to the owner role, what later migrations
    create belongs to it too: a superuser (or another member) running them switches to it.
    (Before that, in a fresh database, the owner may not even create in the schema.)"""
    roles = config.attributes.get("roles") or DatabaseRoles.defaults()
    switch = connection.execute(
        text(
            "SELECT current_user <> r.rolname AND pg_has_role(current_user, r.oid, 'MEMBER') "
            "FROM pg_roles r JOIN pg_class c ON c.relowner = r.oid "
            "WHERE r.rolname = :owner AND c.oid = to_regclass('alembic_version')"
        ),
        {"owner": roles.owner},
    ).scalar()
    if switch:
        connection.execute(text(f'SET ROLE "{roles.owner}"'))
    connection.commit()


run_migrations_online()
