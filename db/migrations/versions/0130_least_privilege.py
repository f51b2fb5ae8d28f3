# ruff: noqa: S608  (SQL built from validated role names and this module's constants only)
"""Least privilege: an owner role, the application's role, a read-only analytics role; keys expire.

The roles (names from the settings, `db.roles.DatabaseRoles`) are created NOLOGIN when they are
missing; deploy/postgres/init-roles.sh makes them login roles with passwords beforehand. Then

* everything in the schema is owned by the owner role (the migrations run as it from here on:
  `db/migrations/env.py` switches to it), never by the role the application connects as, so
  the application cannot ALTER a table, disable a trigger or drop anything;
* the application role reads and writes the payment tables but only reads the ledger
  (`db.roles.LEDGER_TABLES`): the posting functions become SECURITY DEFINER (they run as the
  owner, with a fixed search_path) and are the one way to write it. No UPDATE, DELETE or
  TRUNCATE of an entry, a transaction or a balance;
* analytics reads every table but `api_keys`;
* EXECUTE on the schema's functions is the application's alone (PostgreSQL grants it to PUBLIC
  by default, and a SECURITY DEFINER posting function must not be callable by analytics);
* default privileges give tables and functions that later migrations create the same grants.

A later migration that replaces a posting function (CREATE OR REPLACE resets its attributes)
must say SECURITY DEFINER and SET search_path again; tests/test_db_roles.py posts as the
application role and catches it.

`api_keys.expires_at`: a key is refused from then on (`python -m api.keys rotate` sets it on
the old key after a grace period).

Revision ID: 0130
Revises: 0120, 0020
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from db.roles import CREDENTIAL_TABLES, LEDGER_FUNCTIONS, LEDGER_TABLES, DatabaseRoles

revision: str = "0130"
# A merge of the heads at the time: each table and posting function must exist before its
# grants (0031, which defines ledger_post_batch, comes first through 0050's depends_on).
down_revision: str | Sequence[str] | None = ("0120", "0020")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _roles() -> DatabaseRoles:
    roles = context.config.attributes.get("roles") or DatabaseRoles.defaults()
    for name in (roles.owner, roles.app, roles.analytics):
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a role name: {name!r}")
    return roles


def _literal(names: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{name}'" for name in names) + "]::text[]"


def upgrade() -> None:
    roles = _roles()
    owner, app, analytics = (f'"{n}"' for n in (roles.owner, roles.app, roles.analytics))
    for name in (roles.owner, roles.app, roles.analytics):
        op.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN "
            f'CREATE ROLE "{name}" NOLOGIN; END IF; END $$'
        )

    # The schema: the owner creates in it, the others only use it. Done by whoever may (its
    # owner or a superuser); deploy/postgres/init-roles.sh did it already in compose.
    op.execute(
        f"""
        DO $$ BEGIN
            IF pg_has_role(current_user, (SELECT nspowner FROM pg_namespace
                                          WHERE nspname = current_schema()), 'MEMBER') THEN
                EXECUTE format('GRANT USAGE, CREATE ON SCHEMA %I TO {owner}', current_schema());
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO {app}, {analytics}', current_schema());
                EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
            END IF;
        END $$
        """
    )

    # Ownership: tables (with their indexes and column sequences), views, sequences, functions.
    op.execute(
        f"""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN
                SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
                WHERE c.relnamespace = current_schema()::regnamespace
                  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                  AND c.relowner <> '{roles.owner}'::regrole
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                                  AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
            LOOP
                EXECUTE format('ALTER %s %s OWNER TO {owner}',
                    CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                    r.name);
            END LOOP;
            FOR r IN
                SELECT p.oid::regprocedure AS name, p.prokind FROM pg_proc p
                WHERE p.pronamespace = current_schema()::regnamespace
                  AND p.proowner <> '{roles.owner}'::regrole
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                  AND d.objid = p.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('ALTER %s %s OWNER TO {owner}',
                    CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE'
                        ELSE 'FUNCTION' END,
                    r.name);
            END LOOP;
            FOR r IN
                SELECT t.oid::regtype AS name, t.typtype FROM pg_type t
                WHERE t.typnamespace = current_schema()::regnamespace
                  AND t.typtype IN ('e', 'd') AND t.typowner <> '{roles.owner}'::regrole
                  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                                  AND d.objid = t.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('ALTER %s %s OWNER TO {owner}',
                    CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name);
            END LOOP;
        END $$
        """
    )

    # The posting functions run as the owner, with a search_path nobody else can shadow.
    for function in LEDGER_FUNCTIONS:
        op.execute(
            f"DO $$ BEGIN EXECUTE format('ALTER FUNCTION {function} SECURITY DEFINER "
            "SET search_path = %I, pg_temp', current_schema()); END $$"
        )

    # What the application may do.
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema()} FROM {app}, {analytics}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_schema()} FROM {app}, {analytics}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {_schema()} TO {app}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_schema()} TO {app}")
    ledger = ", ".join(LEDGER_TABLES)
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON {ledger} FROM {app}")
    op.execute(
        f"""
        DO $$
        DECLARE s regclass;
        BEGIN
            FOR s IN SELECT d.objid::regclass FROM pg_depend d
                     JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S'
                     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                       AND d.deptype IN ('a', 'i')
                       AND d.refobjid IN (SELECT to_regclass(t)
                                          FROM unnest({_literal(LEDGER_TABLES)}) t)
            LOOP
                EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM {app}', s);
            END LOOP;
        END $$
        """
    )
    op.execute(f"REVOKE ALL ON alembic_version FROM {app}, {analytics}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {_schema()} TO {analytics}")
    op.execute(f"REVOKE ALL ON alembic_version, {', '.join(CREDENTIAL_TABLES)} FROM {analytics}")
    op.execute(
        f"""
        DO $$
        DECLARE f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                     WHERE p.pronamespace = current_schema()::regnamespace
                       AND NOT EXISTS (SELECT FROM pg_depend d
                                       WHERE d.classid = 'pg_proc'::regclass
                                         AND d.objid = p.oid AND d.deptype = 'e')
            LOOP
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, {analytics}', f);
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {app}', f);
            END LOOP;
        END $$
        """
    )

    # The same for what later migrations create (as the owner).
    default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner}"
    op.execute(f"{default} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC")
    op.execute(
        f"{default} IN SCHEMA {_schema()} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}"
    )
    op.execute(f"{default} IN SCHEMA {_schema()} GRANT USAGE, SELECT ON SEQUENCES TO {app}")
    op.execute(f"{default} IN SCHEMA {_schema()} GRANT EXECUTE ON FUNCTIONS TO {app}")
    op.execute(f"{default} IN SCHEMA {_schema()} GRANT SELECT ON TABLES TO {analytics}")

    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))

    # The rest of this run creates what the owner owns, as later runs do (env.py).
    switch = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT current_user <> rolname AND pg_has_role(current_user, oid, 'MEMBER') "
                "FROM pg_roles WHERE rolname = :owner"
            ),
            {"owner": roles.owner},
        )
        .scalar()
    )
    if switch:
        op.execute(f"SET ROLE {owner}")


def _schema() -> str:
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar()
    if not isinstance(schema, str) or not _IDENTIFIER.match(schema):
        raise ValueError(f"unexpected schema name {schema!r}")
    return f'"{schema}"'


def downgrade() -> None:
    roles = _roles()
    owner, app, analytics = (f'"{n}"' for n in (roles.owner, roles.app, roles.analytics))
    op.drop_column("api_keys", "expires_at")
    default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner}"
    op.execute(f"{default} IN SCHEMA {_schema()} REVOKE SELECT ON TABLES FROM {analytics}")
    op.execute(f"{default} IN SCHEMA {_schema()} REVOKE EXECUTE ON FUNCTIONS FROM {app}")
    op.execute(f"{default} IN SCHEMA {_schema()} REVOKE USAGE, SELECT ON SEQUENCES FROM {app}")
    op.execute(f"{default} IN SCHEMA {_schema()} REVOKE ALL ON TABLES FROM {app}")
    op.execute(f"{default} GRANT EXECUTE ON FUNCTIONS TO PUBLIC")
    for function in LEDGER_FUNCTIONS:
        op.execute(f"ALTER FUNCTION {function} SECURITY INVOKER RESET search_path")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema()} FROM {app}, {analytics}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_schema()} FROM {app}, {analytics}")
    op.execute(f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {_schema()} FROM {app}")
    op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {_schema()} TO PUBLIC")
    # The roles and the ownership stay: they may be in use, and the owner role is harmless.
