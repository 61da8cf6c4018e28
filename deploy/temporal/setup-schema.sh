#!/bin/sh
# Creates or upgrades Temporal's schema in the databases that init-databases.sql made.
# Safe to re-run on every `up`: setup-schema leaves an already stamped database alone
# (only --overwrite resets it) and update-schema applies only the versions it lacks.
# temporal-sql-tool reads the password from SQL_PASSWORD.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" \
    -u "$POSTGRES_USER" "$@"
}

sql_tool --db "${DBNAME:-temporal}" setup-schema -v 0.0
sql_tool --db "${DBNAME:-temporal}" update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
sql_tool --db "${VISIBILITY_DBNAME:-temporal_visibility}" setup-schema -v 0.0
sql_tool --db "${VISIBILITY_DBNAME:-temporal_visibility}" update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
echo "Temporal schema is up to date"
