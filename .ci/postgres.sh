#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests and print its URL on stdout.
#
#   export SUITE_TEST_POSTGRES_URL=$(.ci/postgres.sh)     # start (or reuse) the server
#   .ci/postgres.sh stop                                  # stop it and delete its files
#
# Installs PostgreSQL with apt-get when it is missing, initializes a cluster in
# $SUITE_PG_DIR (default /tmp/suite-pg-<port>), listens on 127.0.0.1:$SUITE_PG_PORT
# (default 54329) with password authentication, and creates the role `suite` (random
# password) owning the database `suite_test`. Run as root it runs the server as `postgres`.
# Progress goes to stderr; only the URL goes to stdout. Running it again while the server
# is up prints the same URL.
set -euo pipefail

PORT=${SUITE_PG_PORT:-54329}
DIR=${SUITE_PG_DIR:-/tmp/suite-pg-$PORT}

as_owner() {  # run a server command as the cluster's owner
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

BIN=$(find_bin)
if [ "${1:-}" = stop ]; then
    if [ -n "$BIN" ] && [ -d "$DIR/data" ]; then
        as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >&2 || true
    fi
    rm -rf "$DIR"
    exit 0
fi

if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "installing postgresql ..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
fi

if [ -f "$DIR/url" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    cat "$DIR/url"
    exit 0
fi

rm -rf "$DIR"
mkdir -p "$DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$DIR"
PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log"
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off" start >"$DIR/start.log"
as_owner "$BIN/psql" -h "$DIR" -p "$PORT" -U postgres -q -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE suite LOGIN PASSWORD '$PASSWORD'" -c "CREATE DATABASE suite_test OWNER suite" >&2
URL="postgresql://suite:$PASSWORD@127.0.0.1:$PORT/suite_test"
(umask 077; echo "$URL" > "$DIR/url")
echo "PostgreSQL up on 127.0.0.1:$PORT (data in $DIR; stop with: $0 stop)" >&2
echo "$URL"
