#!/usr/bin/env bash
# HTTP load run, Sentinel on vs off in the same run: the same board (hyper CPU, a native
# MagGate-like /rest/v1/users, no database) with and without the standard Sentinel agents,
# alternating rounds so machine drift hits both alike. Two requests: a typical GET (4 query
# params, apikey and 5 other headers) and a POST with a small JSON body (Sentinel reads it).
# Prints requests/s and latency per round, the medians and the on/off ratio. Only 127.0.0.1
# is targeted; every wrk run is bounded by -d.
#
#   benches/sentinel-load.sh [seconds-per-round] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
CONNS=${3:-32}
OFF_PORT=18091
ON_PORT=18092
TARGET_DIR=${CARGO_TARGET_DIR:-target}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
fi

cargo build --release -q -p magmobo-benches --bin sentinel-server
SERVER=$TARGET_DIR/release/sentinel-server
$SERVER off 127.0.0.1:$OFF_PORT >/dev/null 2>&1 & OFF_PID=$!
$SERVER on 127.0.0.1:$ON_PORT >/dev/null 2>&1 & ON_PID=$!
POST_LUA=$(mktemp --suffix=.lua)
trap 'kill $OFF_PID $ON_PID 2>/dev/null; wait 2>/dev/null; rm -f "$POST_LUA"' EXIT
for port in $OFF_PORT $ON_PORT; do
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

QUERY='/rest/v1/users?select=id,name,email&id=eq.42&order=name.asc&limit=20'
HEADERS=(-H 'apikey: mf_3f9c2a1b7d4e_Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg'
         -H 'User-Agent: supabase-js/2.45.0' -H 'Accept: application/json'
         -H 'X-Client-Info: supabase-js-web/2.45.0'
         -H 'X-Request-Id: 7b0d9a4e-3c1f-4e8a-9f2d-1a2b3c4d5e6f')
cat >"$POST_LUA" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name":"Ada O\'Brien","email":"ada@example.com","bio":"Selects the best union of math and poetry","tags":["math","poetry"],"age":36}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Sanity: both answer the GET; only "on" blocks the vision's attack.
curl -fsS "${HEADERS[@]}" "http://127.0.0.1:$OFF_PORT$QUERY" >/dev/null
curl -fsS "${HEADERS[@]}" "http://127.0.0.1:$ON_PORT$QUERY" >/dev/null
attack=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ON_PORT/rest/v1/users?id=eq.1%27%20OR%20%271%27%3D%271")
[ "$attack" = 403 ] || { echo "Sentinel did not block the attack (got $attack)" >&2; exit 1; }

run() { # name url round [wrk args...] -> "rps p50 p99" on stdout, a line on stderr
  local name=$1 url=$2 round=$3; shift 3
  local out rps p50 p99
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$@" "$url")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-9s round %s: %10s req/s  p50 %-8s p99 %s\n' "$name" "$round" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}

for port in $OFF_PORT $ON_PORT; do wrk -t1 -c"$CONNS" -d1s "${HEADERS[@]}" "http://127.0.0.1:$port$QUERY" >/dev/null; done

get_off=(); get_on=(); post_off=(); post_on=()
for round in $(seq 1 "$ROUNDS"); do
  get_off+=("$(run get-off "http://127.0.0.1:$OFF_PORT$QUERY" "$round" "${HEADERS[@]}")")
  get_on+=("$(run get-on "http://127.0.0.1:$ON_PORT$QUERY" "$round" "${HEADERS[@]}")")
  post_off+=("$(run post-off "http://127.0.0.1:$OFF_PORT/rest/v1/users" "$round" -s "$POST_LUA" "${HEADERS[@]}")")
  post_on+=("$(run post-on "http://127.0.0.1:$ON_PORT/rest/v1/users" "$round" -s "$POST_LUA" "${HEADERS[@]}")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }
go=$(median "${get_off[@]}"); gn=$(median "${get_on[@]}")
po=$(median "${post_off[@]}"); pn=$(median "${post_on[@]}")
echo "wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS alternating rounds on $(nproc) cores"
echo "GET  Sentinel off: $go req/s  on: $gn req/s  ratio $(ratio "$gn" "$go")"
echo "POST Sentinel off: $po req/s  on: $pn req/s  ratio $(ratio "$pn" "$po")"
