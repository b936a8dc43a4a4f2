#!/usr/bin/env bash
# Throwaway PostgreSQL for the tests.  start DIR PORT -> prints `export TEST_POSTGRES_URL=...`;  stop DIR
set -euo pipefail
mode=$1; dir=$2

pgbin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
BIN=$(pgbin)
[ -n "$BIN" ] || { echo "postgres.sh: no PostgreSQL binaries found (make test installs them)" >&2; exit 1; }

case "$mode" in
start)
  port=$3
  mkdir -p "$dir"
  # The postgres user must reach the data dir: mktemp makes 0700 parents.
  chmod 755 "$dir" "$(dirname "$dir")"
  chown postgres "$dir"
  runuser -u postgres -- "$BIN/initdb" -D "$dir/data" -U app --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
  echo "export TEST_POSTGRES_URL=postgresql://app@127.0.0.1:$port/postgres"
  ;;
stop)
  if [ -f "$dir/data/postmaster.pid" ]; then
    runuser -u postgres -- "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: postgres.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
