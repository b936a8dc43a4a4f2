#!/usr/bin/env bash
# Throwaway Redis for the tests.  start DIR PORT -> prints `export TEST_REDIS_URL=...`;  stop DIR
set -euo pipefail
mode=$1; dir=$2
case "$mode" in
start)
  port=$3
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
  for _ in $(seq 1 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$port" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
  echo "export TEST_REDIS_URL=redis://127.0.0.1:$port/0"
  ;;
stop)
  if [ -f "$dir/redis.pid" ]; then kill "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
  ;;
*) echo "usage: redis.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
