#!/usr/bin/env bash
# Runs every test against a Redis, a Postgres and an S3 server started for this run, then
# stops them by PID. Unit tests need no server; integration tests read
# GANTRY_TEST_REDIS_URL / GANTRY_TEST_DATABASE_URL from .gantry/env.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh install
started_here=0
if [ "$(scripts/services.sh status | grep -c running)" -lt 3 ]; then
  scripts/services.sh start
  started_here=1
fi
stop() { [ "$started_here" = 1 ] && scripts/services.sh stop || true; }
trap stop EXIT

# shellcheck disable=SC1091
. .gantry/env
swift build --build-tests
GANTRY_DATABASE_URL="$GANTRY_ADMIN_DATABASE_URL" .build/debug/gantry migrate
# Each integration test works in a schema and a Redis namespace of its own; drop the earlier
# runs' schemas (their Redis keys go when the disruptive phase flushes Redis). One transaction
# per schema: after many runs against the same server, dropping them all in one ran out of
# lock slots ("out of shared memory", max_locks_per_transaction).
psql "$GANTRY_ADMIN_DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -c "DO \$\$ DECLARE s text; BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); COMMIT; END LOOP; END \$\$;"
rm -rf .gantry/test-logs
# The tests start gantry processes from this build.
export GANTRY_TEST_BINARY="$PWD/.build/debug/gantry"
# Three phases on a two-core machine: the bulk in parallel; then the suites that load the
# machine (a 100 MiB upload through the S3 server, nginx and service instances, a Prometheus,
# a benchmark's own fleet),
# which would otherwise starve the timing-sensitive tests; then the disruptive ones (they
# stop Postgres or restart Redis), alone.
heavy='BackupTests|DeployTests|DeployKubernetesFakeTests|MetricsWatchTests|BenchCommandTests'
swift test --skip-build --skip "Disruptive|$heavy"
swift test --skip-build --filter "$heavy"
swift test --skip-build --filter Disruptive
# The API against its own description: schemathesis (PyPI), as a submitter token, bounded.
FUZZ_SECONDS=60 scripts/api-fuzz.sh
