#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up: PostgreSQL, MariaDB, Redis and
# Mosquitto, found through DATABASE_URL, MYSQL_URL, REDIS_URL and MQTT_URL (local defaults).
# A service that is installed but stopped is started; one that is missing is installed with
# apt-get when running as root. In CI (CI=true) a service that stays unreachable is an error;
# elsewhere it is a warning and the tests that need it say they were skipped.
set -uo pipefail

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
: "${MYSQL_URL:=mysql://root@127.0.0.1:3306/test}"
: "${REDIS_URL:=redis://127.0.0.1:6379}"
: "${MQTT_URL:=mqtt://127.0.0.1:1883}"
export DATABASE_URL MYSQL_URL REDIS_URL MQTT_URL

say() { printf '[test-services] %s\n' "$*" >&2; }

# host and port of a URL like scheme://user:pass@host:port/db
host_port() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" = "$rest" ] && port=$2
  printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

reachable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() {
  local host=$1 port=$2 seconds=${3:-30}
  for _ in $(seq 1 $((seconds * 4))); do
    reachable "$host" "$port" && return 0
    sleep 0.25
  done
  return 1
}

apt_updated=""
install() {
  [ "$(id -u)" = 0 ] || { say "cannot install $* without root"; return 1; }
  command -v apt-get >/dev/null || { say "no apt-get to install $*"; return 1; }
  if [ -z "$apt_updated" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    apt_updated=1
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

start_postgres() {
  command -v pg_ctlcluster >/dev/null || install postgresql || return 1
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || return 1
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
}

start_mariadb() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || install mariadb-server || return 1
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
}

start_redis() {
  command -v redis-server >/dev/null || install redis-server || return 1
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
}

start_mosquitto() {
  command -v mosquitto >/dev/null || install mosquitto || return 1
  mosquitto -d -c /etc/mosquitto/mosquitto.conf >/dev/null 2>&1 || true
}

missing=()
ensure() {
  local name=$1 url=$2 default_port=$3 starter=$4 host port
  read -r host port < <(host_port "$url" "$default_port")
  if reachable "$host" "$port"; then
    say "$name up at $host:$port"
    return
  fi
  case "$host" in
    127.0.0.1|localhost|::1) say "$name not answering at $host:$port; starting it"; "$starter" ;;
    *) say "$name at $host:$port is remote; not starting it" ;;
  esac
  if wait_for "$host" "$port" 30; then
    say "$name up at $host:$port"
  else
    missing+=("$name ($host:$port)")
  fi
}

ensure PostgreSQL "$DATABASE_URL" 5432 start_postgres
ensure MariaDB "$MYSQL_URL" 3306 start_mariadb
ensure Redis "$REDIS_URL" 6379 start_redis
ensure Mosquitto "$MQTT_URL" 1883 start_mosquitto

# The postgrest-js compatibility test runs the real client from npm.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "node/npm missing; installing"
  install nodejs npm || missing+=("node/npm")
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "${CI:-}" = "true" ]; then
    say "ERROR: unreachable in CI: ${missing[*]}. Tests must not skip in CI; fix the service."
    exit 1
  fi
  say "WARNING: unreachable: ${missing[*]}. Tests needing them will be skipped (they fail under CI=true)."
fi
