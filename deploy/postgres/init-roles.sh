#!/bin/sh
# The roles of the compose PostgreSQL (README: "Least privilege in PostgreSQL"). The image runs
# this once, when it initialises an empty volume; on an existing volume run it by hand, as often
# as you like (it changes only what differs):
#   docker compose exec -u postgres postgresql sh /docker-entrypoint-initdb.d/10-roles.sh
#
# - DB_OWNER_ROLE (kzpay_owner) owns the payments database and, through migration 0130, every
#   object in it; the `migrate` job connects as it, nothing else does.
# - DB_APP_ROLE (kzpay_app): the API and the workers. Owns nothing; migration 0130 grants it
#   what the code needs and no UPDATE, DELETE or TRUNCATE on the ledger.
# - DB_ANALYTICS_ROLE (kzpay_analytics): read-only (migration 0130).
# - TEMPORAL_DB_USER (temporal): owns Temporal's two databases and may not enter payments.
# None is a superuser or may create roles or databases. Passwords come from .env.
set -eu
: "${DB_OWNER_PASSWORD:?}" "${DB_APP_PASSWORD:?}" "${DB_ANALYTICS_PASSWORD:?}" "${TEMPORAL_DB_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v payments="${POSTGRES_DB:-payments}" \
    -v owner="${DB_OWNER_ROLE:-kzpay_owner}" -v owner_password="$DB_OWNER_PASSWORD" \
    -v app="${DB_APP_ROLE:-kzpay_app}" -v app_password="$DB_APP_PASSWORD" \
    -v analytics="${DB_ANALYTICS_ROLE:-kzpay_analytics}" \
    -v analytics_password="$DB_ANALYTICS_PASSWORD" \
    -v temporal="${TEMPORAL_DB_USER:-temporal}" -v temporal_password="$TEMPORAL_DB_PASSWORD" \
    -v temporal_db="${TEMPORAL_DBNAME:-temporal}" \
    -v visibility_db="${TEMPORAL_VISIBILITY_DBNAME:-temporal_visibility}" <<'SQL'
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'owner', :'app', :'analytics', :'temporal']) r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'app_password';
ALTER ROLE :"analytics" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'analytics_password';
ALTER ROLE :"temporal" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'temporal_password';

SELECT format('CREATE DATABASE %I', d) FROM unnest(ARRAY[:'payments', :'temporal_db', :'visibility_db']) d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec
ALTER DATABASE :"payments" OWNER TO :"owner";
ALTER DATABASE :"temporal_db" OWNER TO :"temporal";
ALTER DATABASE :"visibility_db" OWNER TO :"temporal";
-- Nobody connects anywhere by default; each role to its own database.
REVOKE ALL ON DATABASE :"payments", :"temporal_db", :"visibility_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"payments" TO :"app", :"analytics";
GRANT TEMPORARY ON DATABASE :"payments" TO :"app";

\connect :"payments"
-- PostgreSQL 15+: `public` belongs to the database's owner (the owner role now); PostgreSQL 14:
-- the superuser keeps it and lets the owner create in it. Nobody else creates anything.
GRANT USAGE, CREATE ON SCHEMA public TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"analytics";
SQL
echo "the owner, application, analytics and Temporal roles are in place"
