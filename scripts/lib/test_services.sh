# Starts the 'test' instance's PostgreSQL and Kafka (fresh; PG_PORT, KAFKA_PORT and
# KAFKA_CONTROLLER_PORT move them) and exports what the integration, e2e and fault tests read
# (TEST_LOG_DIR is kept when set). Source it after common.sh; call start_test_services, and
# stop_test_services from the caller's EXIT trap.
# shellcheck shell=bash

test_services_started=()

start_test_services() {
  "$REPO_ROOT/scripts/infra/postgres" start test --fresh; test_services_started+=(postgres)
  "$REPO_ROOT/scripts/infra/kafka" start test --fresh; test_services_started+=(kafka)
  instance_ports test
  TEST_DB_URL="$("$REPO_ROOT/scripts/infra/postgres" url test)"
  export TEST_DB_URL
  export TEST_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
  export TEST_LOG_DIR="${TEST_LOG_DIR:-$REPO_ROOT/build/test-logs}"
  mkdir -p "$TEST_LOG_DIR"
}

stop_test_services() {
  local service
  for service in "${test_services_started[@]}"; do
    "$REPO_ROOT/scripts/infra/$service" stop test || true
  done
  test_services_started=()
}
