#!/bin/sh
# The postgresql service's entrypoint (docker-compose.yml): PostgreSQL refuses a private key that
# others may read, and the mounted files belong to the host's user. So, as root, copy the server
# certificate and key where only postgres reads them, then hand over to the image's entrypoint
# (which drops to the postgres user) with the command line: ssl=on with these files.
set -eu
: "${PG_TLS_DIR:?the directory of postgresql.crt, postgresql.key and ca.crt}"
install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/tls
install -o postgres -g postgres -m 0644 "$PG_TLS_DIR/postgresql.crt" /var/lib/postgresql/tls/server.crt
install -o postgres -g postgres -m 0600 "$PG_TLS_DIR/postgresql.key" /var/lib/postgresql/tls/server.key
install -o postgres -g postgres -m 0644 "$PG_TLS_DIR/ca.crt" /var/lib/postgresql/tls/ca.crt
exec docker-entrypoint.sh "$@"
