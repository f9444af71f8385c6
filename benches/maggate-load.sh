#!/usr/bin/env bash
# MagGate on PostgreSQL against the ceiling of the same SQL sent straight to PostgreSQL with
# pgbench (same client count), in the same run: GET by primary key, GET 20 rows filtered and
# ordered, POST one row, over a 100,000-row table. Only 127.0.0.1 is targeted; every run is
# bounded by its duration. The server is the magflock binary with its defaults (Sentinel
# on), API keys off so the number is MagGate's own.
#
#   benches/maggate-load.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-32}
PORT=18401
ADMIN=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=magmobo_bench
URL="${ADMIN%/*}/$DB"
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v pgbench >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib >/dev/null

psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
psql -q "$URL" <<'SQL'
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, category int NOT NULL,
                    price int NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO items (name, category, price)
  SELECT 'item ' || g, 1 + g % 100, (g * 7919) % 10000 FROM generate_series(1, 100000) g;
CREATE INDEX items_category_price ON items (category, price DESC);
ANALYZE items;
SQL

cargo build --release -q -p magflock
BIN="${CARGO_TARGET_DIR:-target}/release/magflock"
PROJECT=$(mktemp -d)
# Sentinel stays on, but its per-IP and per-identity rate limits (100 and 200 req/s by
# default) would answer most of a load test from one address with 429: they are turned off.
# The server may open as many database connections as pgbench does (CONNS): writes wait for
# WAL flushes, and PostgreSQL flushes the commits of concurrent sessions together.
export MAGFLOCK_POOL_SIZE=${MAGFLOCK_POOL_SIZE:-$CONNS}
MAGFLOCK_RATE_LIMIT_PER_IP=0 MAGFLOCK_RATE_LIMIT_PER_IDENTITY=0 MAGFLOCK_REQUIRE_API_KEY=false "$BIN" --project "$PROJECT" start \
  --listen 127.0.0.1:$PORT --database-url "$URL" >/dev/null 2>&1 & PID=$!
trap 'kill $PID 2>/dev/null; wait 2>/dev/null; rm -rf "$PROJECT"; psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

SCRIPTS=$(mktemp -d)
cat > "$SCRIPTS/get.sql" <<'SQL'
\set id random(1, 100000)
SELECT coalesce(json_agg(t), '[]') FROM (SELECT * FROM items WHERE id = :id) t;
SQL
cat > "$SCRIPTS/list.sql" <<'SQL'
\set c random(1, 100)
SELECT coalesce(json_agg(t), '[]') FROM (SELECT * FROM items WHERE category = :c ORDER BY price DESC LIMIT 20) t;
SQL
cat > "$SCRIPTS/post.sql" <<'SQL'
\set c random(1, 100)
\set p random(1, 10000)
INSERT INTO items (name, category, price) VALUES ('bench', :c, :p);
SQL

wrk_run() { # lua -> "rps p50 p99 non2xx"
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "benches/wrk/$1" "http://127.0.0.1:$PORT")
  local bad
  bad=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") ${bad:-0}"
}
pg_run() { # sql -> tps
  pgbench -n -M prepared -c "$CONNS" -j 2 -T "$SECS" -f "$SCRIPTS/$1" "$URL" 2>/dev/null \
    | awk '/^tps/ {print $3; exit}'
}

# Warm-up, not measured: the server opens its pool's connections and prepares its statements
# (pgbench, too, reports its rate without the time spent connecting).
for lua in get_by_id.lua list.lua; do
  wrk -t2 -c"$CONNS" -d2s -s "benches/wrk/$lua" "http://127.0.0.1:$PORT" >/dev/null
done

printf '%-22s %12s %10s %10s %14s %8s %8s\n' "case" "MagGate r/s" "p50" "p99" "pgbench tps" "ratio" "non-2xx"
for case in "get_by_id.lua get.sql GET by primary key" "list.lua list.sql GET 20 filtered+ordered" "post.lua post.sql POST one row"; do
  set -- $case
  lua=$1; sql=$2; shift 2
  read -r rps p50 p99 bad < <(wrk_run "$lua")
  tps=$(pg_run "$sql")
  ratio=$(awk -v a="$rps" -v b="$tps" 'BEGIN {printf "%.2f", a/b}')
  printf '%-22s %12s %10s %10s %14s %8s %8s\n' "$*" "$rps" "$p50" "$p99" "$tps" "$ratio" "$bad"
  if [ "$bad" != "0" ]; then echo "  ^ $bad answers were not 2xx: the figure is not MagGate's throughput" >&2; fi
done
# Sentinel's share: GET by primary key against a second server with Sentinel off, in
# alternating rounds with the first.
PROJECT2=$(mktemp -d)
MAGFLOCK_SENTINEL=false MAGFLOCK_REQUIRE_API_KEY=false "$BIN" --project "$PROJECT2" start \
  --listen 127.0.0.1:$((PORT + 1)) --database-url "$URL" >/dev/null 2>&1 & PID2=$!
trap 'kill $PID $PID2 2>/dev/null; wait 2>/dev/null; rm -rf "$PROJECT" "$PROJECT2"; psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$((PORT + 1))/health" >/dev/null && break; sleep 0.1; done
wrk -t2 -c"$CONNS" -d2s -s benches/wrk/get_by_id.lua "http://127.0.0.1:$((PORT + 1))" >/dev/null
echo
printf '%-22s %14s %10s %14s %10s %8s\n' "GET by pk, round" "Sentinel on" p99 "Sentinel off" p99 "on/off"
for r in 1 2; do
  read -r on _ onp99 _ < <(wrk_run get_by_id.lua)
  read -r off _ offp99 _ < <(PORT=$((PORT + 1)) wrk_run get_by_id.lua)
  printf '%-22s %14s %10s %14s %10s %8s\n' "$r" "$on" "$onp99" "$off" "$offp99" "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.2f", a/b}')"
done
rm -rf "$SCRIPTS"
