#!/bin/sh
# One-shot job (temporalio/admin-tools): creates Temporal's persistence and visibility databases
# in PostgreSQL if they are missing and migrates both schemas to the image's version.
# Safe to run on every `docker compose up`: each step is a no-op when already done.
# It connects as Temporal's own role (POSTGRES_USER), which owns both databases
# (deploy/postgres/init-roles.sh), over TLS verifying the server's name when SQL_TLS_CA_FILE is set.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql_tool() {
    if [ -n "${SQL_TLS_CA_FILE:-}" ]; then
        temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
            -u "$POSTGRES_USER" --tls --tls-ca-file "$SQL_TLS_CA_FILE" \
            --tls-enable-host-verification "$@"
    else
        temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
            -u "$POSTGRES_USER" "$@"
    fi
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
