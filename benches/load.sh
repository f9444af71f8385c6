#!/usr/bin/env bash
# HTTP load run: the board (hyper CPU + route table + one extension's routes, native and axum)
# against a bare hyper server answering the same bytes, alternating rounds in the same run so machine drift
# hits both alike. Prints requests/s and latency per round and the board/bare ratio of the
# medians. Only 127.0.0.1 is targeted; every wrk run is bounded by -d.
#
#   benches/load.sh [seconds-per-round] [rounds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
CONNS=${3:-32}
BARE_PORT=18081
BOARD_PORT=18082

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
fi

cargo build --release -q -p magmobo-benches --bin bench-server
SERVER=target/release/bench-server
$SERVER bare 127.0.0.1:$BARE_PORT 2>/dev/null & BARE_PID=$!
$SERVER board 127.0.0.1:$BOARD_PORT >/dev/null 2>&1 & BOARD_PID=$!
trap 'kill $BARE_PID $BOARD_PID 2>/dev/null; wait 2>/dev/null' EXIT
for port in $BARE_PORT $BOARD_PORT; do
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done
curl -fsS "http://127.0.0.1:$BOARD_PORT/hello" >/dev/null
curl -fsS "http://127.0.0.1:$BOARD_PORT/axum/hello" >/dev/null
curl -fsS "http://127.0.0.1:$BARE_PORT/hello" >/dev/null

run() { # name url round -> rps on stdout, a line on stderr
  local out
  out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$2")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-6s round %s: %10s req/s  p50 %-8s p99 %s\n' "$1" "$3" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}

BARE=http://127.0.0.1:$BARE_PORT/hello
NATIVE=http://127.0.0.1:$BOARD_PORT/hello
AXUM=http://127.0.0.1:$BOARD_PORT/axum/hello
# Warm all up once (not recorded).
for url in $BARE $NATIVE $AXUM; do wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null; done

bare=(); native=(); axum=()
for round in $(seq 1 "$ROUNDS"); do
  bare+=("$(run bare "$BARE" "$round")")
  native+=("$(run native "$NATIVE" "$round")")
  axum+=("$(run axum "$AXUM" "$round")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a/b}'; }
mb=$(median "${bare[@]}"); mn=$(median "${native[@]}"); ma=$(median "${axum[@]}")
echo "wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS alternating rounds on $(nproc) cores"
echo "median bare hyper:          $mb req/s"
echo "median board, native route: $mn req/s  ratio $(ratio "$mn" "$mb") (target >= 0.90)"
echo "median board, axum route:   $ma req/s  ratio $(ratio "$ma" "$mb")"
