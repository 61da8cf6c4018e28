#!/bin/sh
# Waits for the Temporal frontend, creates the namespace if it is missing, and registers
# the custom search attributes listed in SEARCH_ATTRIBUTES ("Name=Type" separated by spaces).
# Safe to re-run: an attribute that already exists is skipped by the server.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"

# The `temporal` CLI sends TEMPORAL_API_KEY as its bearer token; compose mounts the token as a file. Its mTLS
# comes from TEMPORAL_TLS_* (the server name too, since the address below is an IP).
if [ -n "${TEMPORAL_API_KEY_FILE:-}" ]; then
  TEMPORAL_API_KEY=$(cat "$TEMPORAL_API_KEY_FILE")
  export TEMPORAL_API_KEY
fi

host=${TEMPORAL_ADDRESS%:*}
port=${TEMPORAL_ADDRESS##*:}
# gRPC may try an IPv6 address first inside the compose network; pin the IPv4 one.
ip=$(getent ahosts "$host" | awk '$1 ~ /^[0-9.]+$/ { print $1; exit }')
address="${ip:-$host}:$port"

# Runs a command until it succeeds: the frontend may accept connections before it serves,
# and a namespace just created takes a few seconds to reach every service's cache.
retry() {
  attempt=1
  until "$@"; do
    if [ "$attempt" -ge 60 ]; then
      echo "gave up after $attempt attempts: $*" >&2
      return 1
    fi
    attempt=$((attempt + 1))
    sleep 2
  done
}

retry temporal operator cluster health --address "$address"

if ! temporal operator namespace describe --address "$address" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  retry temporal operator namespace create --address "$address" --namespace "$NAMESPACE" \
    --retention "${NAMESPACE_RETENTION:-720h}"
fi

for attribute in $SEARCH_ATTRIBUTES; do
  retry temporal operator search-attribute create --address "$address" --namespace "$NAMESPACE" \
    --name "${attribute%%=*}" --type "${attribute#*=}"
done
temporal operator search-attribute list --address "$address" --namespace "$NAMESPACE"

# The hourly purge of customers' personal data past retention (workflows/pii_purge.py).
if ! temporal schedule describe --address "$address" --namespace "$NAMESPACE" --schedule-id pii-purge >/dev/null 2>&1; then
  retry temporal schedule create --address "$address" --namespace "$NAMESPACE" --schedule-id pii-purge \
    --interval 1h --overlap-policy Skip --workflow-id pii-purge --type PiiPurgeWorkflow \
    --task-queue delivery-workflows
fi

# Every minute, the orders stored but never started, started once (workflows/stranded_orders.py).
if ! temporal schedule describe --address "$address" --namespace "$NAMESPACE" --schedule-id stranded-orders \
    >/dev/null 2>&1; then
  retry temporal schedule create --address "$address" --namespace "$NAMESPACE" --schedule-id stranded-orders \
    --interval 1m --overlap-policy Skip --workflow-id stranded-orders --type StrandedOrdersWorkflow \
    --task-queue delivery-workflows
fi
