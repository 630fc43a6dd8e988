# Shared helpers for the project's scripts. Source it; do not run it.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE_DIR="$REPO_ROOT/.cache"
DATA_ROOT="$REPO_ROOT/.data"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# An instance is a named set of local services with its own ports and data, so the
# test suite never collides with a development server running at the same time.
#   dev    the one ./scripts/run uses
#   test   the one ./scripts/test uses
#   bench  the benchmarks
#   fault  the fault-injection suite (test/fault), which starts and stops it itself
# LB_PORT is where the instance's nginx listens (scripts/lb); replicas use the ports after it.
instance_ports() {
  case "$1" in
    dev)  PG_PORT="${PG_PORT:-15432}";  KAFKA_PORT="${KAFKA_PORT:-9092}";  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"; LB_PORT="${LB_PORT:-8080}" ;;
    test) PG_PORT="${PG_PORT:-18432}";  KAFKA_PORT="${KAFKA_PORT:-19092}"; KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"; LB_PORT="${LB_PORT:-18080}" ;;
    bench) PG_PORT="${PG_PORT:-28432}"; KAFKA_PORT="${KAFKA_PORT:-29092}"; KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-29093}"; LB_PORT="${LB_PORT:-28080}" ;;
    fault) PG_PORT="${PG_PORT:-25732}"; KAFKA_PORT="${KAFKA_PORT:-25092}"; KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-25093}"; LB_PORT="${LB_PORT:-25080}" ;;
    *) die "unknown instance '$1' (expected dev, test, bench or fault)" ;;
  esac
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Process id recorded in a pid file, if that process is still alive.
live_pid() {
  local file="$1" pid
  [[ -f "$file" ]] || return 1
  pid="$(head -n1 "$file")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

# Waits up to $2 seconds for command "$3..." to succeed.
wait_for() {
  local what="$1" seconds="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    (( SECONDS < deadline )) || { log "timed out after ${seconds}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

KAFKA_VERSION() { sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$REPO_ROOT/tools/kafka/pom.xml"; }
