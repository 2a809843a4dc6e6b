#!/usr/bin/env bash
# `make demo`: starts Redis and Postgres on loopback, a dispatcher and two
# workers, runs a batch of noop steps through every path (success, retry,
# timeout, exhausted retries, a message that is not a job, a worker SIGKILLed
# mid-step), then prints from Postgres how every step ended. Everything it
# started is stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh start
swift build -c release 2>&1 | tail -n 1
# shellcheck disable=SC1091
. .gantry/env
G=.build/release/gantry
NS="demo-$(date +%s)"
LOGS=.gantry/demo
mkdir -p "$LOGS"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "migrate the schema (as the schema owner)"
GANTRY_DATABASE_URL="$GANTRY_ADMIN_DATABASE_URL" $G migrate

say "start a dispatcher and two workers (lease 2s, namespace $NS)"
$G dispatcher --namespace "$NS" --id demo-dispatcher --reap-interval 250ms >"$LOGS/dispatcher.log" 2>&1 & pids+=($!)
$G worker --namespace "$NS" --kind noop --id worker-a --concurrency 16 --lease 2s >"$LOGS/worker-a.log" 2>&1 & pids+=($!); worker_a=$!
$G worker --namespace "$NS" --kind noop --id worker-b --concurrency 16 --lease 2s >"$LOGS/worker-b.log" 2>&1 & pids+=($!)
sleep 1

say "enqueue: 10 quick steps, 4 that fail their first attempt, 1 that always fails, 1 that hangs past its 1s timeout, 6 slow ones"
quick=$($G enqueue --namespace "$NS" --kind noop --count 10 --with '{"sleep_ms":20}')
flaky=$($G enqueue --namespace "$NS" --kind noop --count 4 --with '{"sleep_ms":20,"fail_first":1}' --backoff 300ms)
doomed=$($G enqueue --namespace "$NS" --kind noop --count 1 --with '{"exit_code":2}' --max-attempts 2 --backoff 200ms)
hung=$($G enqueue --namespace "$NS" --kind noop --count 1 --with '{"hang":true}' --timeout 1s --max-attempts 2 --backoff 200ms)
slow=$($G enqueue --namespace "$NS" --kind noop --count 6 --with '{"sleep_ms":3000}')

say "send a message that is not a job"
redis-cli -p 6390 --user gantry --pass "$(sed -n 's/^REDIS_PASSWORD=//p' .gantry/secrets)" --no-auth-warning \
  XADD "{$NS}:q:noop" '*' hello world >/dev/null
echo "XADD {$NS}:q:noop * hello world"

sleep 1
say "SIGKILL worker-a while it holds slow steps (pid $worker_a)"
kill -9 "$worker_a"
echo "killed; the dispatcher reclaims its steps once the 2s lease expires"

say "wait for every run to end"
all="$quick $flaky $doomed $hung $slow"
for i in $(seq 1 120); do
  running=$(psql "$GANTRY_DATABASE_URL" -qAt -c "SELECT count(*) FROM runs WHERE finished_at IS NULL AND id IN ($(printf "'%s'," $all | sed 's/,$//'))")
  [ "$running" = 0 ] && break
  printf '%s runs still running\r' "$running"
  sleep 0.5
done
echo

say "how each run ended, from the ledger in Postgres (gantry attempts --run ID)"
for id in $all; do $G attempts --run "$id"; done

say "dead: the message that was not a job, and the step that exhausted its attempts (gantry dlq list)"
$G dlq list --namespace "$NS" --kind noop

say "summary"
psql "$GANTRY_DATABASE_URL" -q -c "
  SELECT status AS attempt_status, count(*) FROM attempts
  WHERE run_id IN ($(printf "'%s'," $all | sed 's/,$//')) GROUP BY 1 ORDER BY 1;" \
  -c "SELECT status AS run_status, count(*) FROM runs
  WHERE id IN ($(printf "'%s'," $all | sed 's/,$//')) GROUP BY 1 ORDER BY 1;"
echo "logs: $LOGS/"
