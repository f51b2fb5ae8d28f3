#!/bin/sh
# One-shot job (temporalio/admin-tools): creates Temporal's persistence and visibility databases
# in PostgreSQL if they are missing and migrates both schemas to the image's version.
# Safe to run on every `docker compose up`: each step is a no-op when already done.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
        -u "$POSTGRES_USER" "$@"
}

setup() {
    database=$1
    versioned=$2
    # `create` fails when the database exists; a real connection problem fails the next step.
    sql_tool --db "$database" create || echo "database $database already exists"
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "$SCHEMA_DIR/$versioned/versioned"
}

setup "${DBNAME:-temporal}" temporal
setup "${VISIBILITY_DBNAME:-temporal_visibility}" visibility
echo "Temporal schemas are up to date"
