#!/usr/bin/env bash
# MagGate's read cache: the same GET (a hot set of 100 rows by primary key) against two
# magflock servers on the same PostgreSQL database, one with the read cache (moka, 5 s TTL)
# and one without, in alternating rounds of the same run. Only 127.0.0.1 is targeted; every
# round is bounded by its duration.
#
#   benches/cache-load.sh [seconds] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
CONNS=${3:-32}
ADMIN=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=magmobo_cache_bench
URL="${ADMIN%/*}/$DB"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -q "$URL" <<'SQL'
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, category int NOT NULL,
                    price int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO items (name, category, price)
  SELECT 'item ' || g, 1 + g % 100, (g * 7919) % 10000 FROM generate_series(1, 100000) g;
ANALYZE items;
SQL

cargo build --release -q -p magflock
BIN="${CARGO_TARGET_DIR:-target}/release/magflock"
P1=$(mktemp -d); P2=$(mktemp -d)
# Rate limits off (one client address); API keys off so the figure is MagGate's own.
export MAGFLOCK_RATE_LIMIT_PER_IP=0 MAGFLOCK_RATE_LIMIT_PER_IDENTITY=0 MAGFLOCK_REQUIRE_API_KEY=false
"$BIN" --project "$P1" start --listen 127.0.0.1:18411 --database-url "$URL" >/dev/null 2>&1 & A=$!
# The second starts once the first has created the tables (first boot of the project).
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:18411/health" >/dev/null && break; sleep 0.1; done
MAGFLOCK_READ_CACHE_SECS=5 "$BIN" --project "$P2" start --listen 127.0.0.1:18412 --database-url "$URL" >/dev/null 2>&1 & B=$!
trap 'kill $A $B 2>/dev/null; wait 2>/dev/null; rm -rf "$P1" "$P2"; psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
for port in 18411 18412; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done

run() { # port -> "rps p99 non2xx"
  local out bad
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s benches/wrk/get_hot.lua "http://127.0.0.1:$1")
  bad=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") ${bad:-0}"
}
printf '%-6s %14s %10s %14s %10s %8s\n' round "no cache r/s" p99 "cached r/s" p99 ratio
for r in $(seq 1 "$ROUNDS"); do
  read -r a ap99 abad < <(run 18411)
  read -r b bp99 bbad < <(run 18412)
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b/a}')
  printf '%-6s %14s %10s %14s %10s %8s\n' "$r" "$a" "$ap99" "$b" "$bp99" "$ratio"
  if [ "$abad$bbad" != "00" ]; then echo "  ^ non-2xx answers: $abad / $bbad" >&2; fi
done
