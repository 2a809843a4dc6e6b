#!/usr/bin/env bash
# `make demo`: starts Redis and Postgres on loopback, a dispatcher (serving the
# API) and two workers, runs a batch of noop steps through every path (success,
# retry, timeout, exhausted retries, a message that is not a job, a worker
# SIGKILLed mid-step) and prints from Postgres how every step ended; then runs
# pipelines through the API as CI and approvers would: a staging DAG with
# outputs flowing between steps, a production run behind typed confirmation,
# promotion and two approvers; then the real step kinds: a build, a scan gate
# that passes and one that closes on a committed key (blocking the deployment),
# a smoke test and notifications caught by a local stand-in for Slack and a
# webhook receiver. Everything it started is stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh start
# The release build as a deployment would make it (static Swift runtime, lld, packed relocations).
scripts/build-release.sh 2>&1 | tail -n 1
# shellcheck disable=SC1091
. .gantry/env
G=.build/release/gantry
NS="demo-$(date +%s)"
LOGS=.gantry/demo
mkdir -p "$LOGS"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # The deploy worker's service instances (process groups) and its nginx, by the PIDs it recorded.
  for state in "$LOGS"/local/services/*/state.json; do
    [ -f "$state" ] || continue
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); [print(i["pid"]) for r in ("active","previous","pending") if s.get(r) for i in s[r]["instances"]]' "$state" |
      while read -r pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  done
  [ -f "$LOGS/local/nginx/nginx.pid" ] && kill -QUIT "$(cat "$LOGS/local/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  scripts/services.sh stop
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# Workers hold the workers' database role (record attempts, read policies; docs/operations.md#database-roles).
# `exec` so that, started with `&`, $! is the worker's own PID.
gantry_worker() { GANTRY_DATABASE_URL="$GANTRY_WORKER_DATABASE_URL" exec $G worker "$@"; }

say "migrate the schema (as the schema owner)"
GANTRY_DATABASE_URL="$GANTRY_ADMIN_DATABASE_URL" $G migrate

say "start a dispatcher and two workers (lease 2s, namespace $NS)"
API_PORT=${GANTRY_DEMO_API_PORT:-8090}
$G dispatcher --namespace "$NS" --id demo-dispatcher --reap-interval 250ms --listen "127.0.0.1:$API_PORT" >"$LOGS/dispatcher.log" 2>&1 & pids+=($!)
gantry_worker --namespace "$NS" --kind noop --id worker-a --concurrency 16 --lease 2s >"$LOGS/worker-a.log" 2>&1 & pids+=($!); worker_a=$!
gantry_worker --namespace "$NS" --kind noop --id worker-b --concurrency 16 --lease 2s >"$LOGS/worker-b.log" 2>&1 & pids+=($!)
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

# ---------------------------------------------------------------------------
say "pipelines through the API (GANTRY_URL=http://127.0.0.1:$API_PORT); first with noop steps, then with real step kinds"
export GANTRY_URL="http://127.0.0.1:$API_PORT"
gantry_worker --namespace "$NS" --kind noop --id worker-c --concurrency 16 --lease 2s >"$LOGS/worker-c.log" 2>&1 & pids+=($!)
# Tokens are an admin's to make: the owner's URL (the application's role may only read them).
CI=$($G token create --database-url "$GANTRY_ADMIN_DATABASE_URL" --namespace "$NS" --name ci --role submitter --env staging,production 2>/dev/null)
ALICE=$($G token create --database-url "$GANTRY_ADMIN_DATABASE_URL" --namespace "$NS" --name alice --role approver --env production 2>/dev/null)
BOB=$($G token create --database-url "$GANTRY_ADMIN_DATABASE_URL" --namespace "$NS" --name bob --role approver --env production 2>/dev/null)
echo "tokens: ci (submitter for staging, production), alice and bob (approvers for production) — gantry token list:"
$G token list --namespace "$NS"

cat >"$LOGS/staging.yml" <<'YAML'
pipeline: demo-staging
environment: staging
steps:
  - { id: build, kind: noop, with: { sleep_ms: 300, log: "built registry.local/api:${{ run.short_sha }}", output: { image: "registry.local/api:${{ run.short_sha }}" } } }
  - { id: unit-tests, kind: noop, needs: [build], with: { sleep_ms: 400 } }
  - { id: integration-tests, kind: noop, needs: [build], retry: { max_attempts: 3, backoff: { initial: 500ms } }, with: { sleep_ms: 300, fail_first: 1 } }
  - { id: deploy, kind: noop, needs: [unit-tests, integration-tests], with: { sleep_ms: 200, output: { deployed: "${{ steps.build.outputs.image }}" } } }
on_failure:
  - { id: rollback, kind: noop }
finally:
  - { id: notify, kind: noop }
YAML
cat >"$LOGS/production.yml" <<'YAML'
pipeline: demo-production
environment: production
gates: { confirm: "DEPLOY TO PRODUCTION", promote_from: staging }
steps:
  - { id: approval, kind: approval, with: { required: 2, distinct_from_submitter: true, timeout: 10m } }
  - { id: deploy, kind: noop, needs: [approval], with: { sleep_ms: 300 } }
finally:
  - { id: announce, kind: noop }
YAML
SHA=3f2a9c1d7e

say "CI: gantry submit --pipeline staging.yml --sha $SHA --wait (progress lines, exit status = the run's)"
GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/staging.yml" --sha $SHA --ref main --wait

say "the build step's log (gantry logs RUN --step build)"
STAGING_RUN=$(GANTRY_TOKEN=$CI $G runs --limit 1 | awk '{print $1}')
GANTRY_TOKEN=$CI $G logs "$STAGING_RUN" --step build

say "CI: production with a SHA that never passed staging, then without the confirmation text (both refused, exit 2)"
GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/production.yml" --sha 0badc0de --confirm "DEPLOY TO PRODUCTION" || echo "exit $?"
GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/production.yml" --sha $SHA || echo "exit $?"

say "CI: production, promoted from staging and confirmed"
RUN=$(GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/production.yml" --sha $SHA --confirm "DEPLOY TO PRODUCTION" | awk '{print $1}')
sleep 1
GANTRY_TOKEN=$CI $G run "$RUN"

say "approvals: the submitter may not approve its own run; alice and bob do"
GANTRY_TOKEN=$CI $G approve "$RUN" --step approval || echo "exit $?"
GANTRY_TOKEN=$ALICE $G approve "$RUN" --step approval --comment "diff reviewed" >/dev/null && echo "alice approved (1/2)"
GANTRY_TOKEN=$BOB $G approve "$RUN" --step approval --comment "ship it" >/dev/null && echo "bob approved (2/2)"
for i in $(seq 1 40); do
  status=$(GANTRY_TOKEN=$CI $G run "$RUN" | awk 'NR == 1 {print $3}')
  [ "$status" = SUCCEEDED ] || [ "$status" = FAILED ] && break
  sleep 0.25
done
GANTRY_TOKEN=$CI $G run "$RUN"

# ---------------------------------------------------------------------------
say "real step kinds: build, scan, smoke-test and notify (a local server stands in for the service, Slack and a webhook receiver)"
HOOK_SECRET="whsec-demo-$(date +%s%N | sha256sum | head -c 16)"
: >"$LOGS/captured.jsonl"
HOOK_SECRET=$HOOK_SECRET python3 scripts/capture-server.py --out "$LOGS/captured.jsonl" >"$LOGS/capture.port" & pids+=($!)
for i in $(seq 1 50); do [ -s "$LOGS/capture.port" ] && break; sleep 0.1; done
CAPTURE="http://127.0.0.1:$(cat "$LOGS/capture.port")"
# One fleet, one set of secrets: Slack and PagerDuty both point at the stand-in server.
SLACK_URL="$CAPTURE/slack/T0DEMO/B0DEMO/$(date +%s%N | sha256sum | head -c 24)"
PD_KEY="pd-demo-$(date +%s%N | sha256sum | head -c 20)"
GANTRY_SECRET_SLACK_WEBHOOK="$SLACK_URL" GANTRY_SECRET_HOOK_SECRET=$HOOK_SECRET GANTRY_SECRET_PAGERDUTY_ROUTING_KEY="$PD_KEY" \
  gantry_worker --namespace "$NS" --kind build,scan,smoke-test,notify --id worker-kinds --concurrency 8 --lease 5s >"$LOGS/worker-kinds.log" 2>&1 & pids+=($!)
WS="$PWD/$LOGS/workspace"
rm -rf "$WS" && mkdir -p "$WS/src"
echo 'export const greeting = "hello"' >"$WS/src/app.js"
cat >"$WS/trivy.json" <<'JSON'
{"SchemaVersion": 2, "ArtifactName": "registry.local/api:3f2a9c1", "Results": [{"Target": "registry.local/api:3f2a9c1 (debian 12.8)", "Class": "os-pkgs",
 "Vulnerabilities": [{"VulnerabilityID": "CVE-2023-50387", "PkgName": "libsystemd0", "InstalledVersion": "252.19-1~deb12u1", "FixedVersion": "252.21-1~deb12u1", "Severity": "HIGH"}]}]}
JSON
cat >"$LOGS/service.yml" <<YAML
pipeline: demo-service
environment: staging
steps:
  - id: build
    kind: build
    with:
      run: |
        echo "building api at \$GANTRY_SHA for \$GANTRY_ENVIRONMENT"
        mkdir -p "\$WORKSPACE/dist" && echo "api \$GANTRY_SHA" > "\$WORKSPACE/dist/api.txt"
        echo "artifact=\$WORKSPACE/dist/api.txt" >> "\$GANTRY_OUTPUT"
      env: { WORKSPACE: "$WS" }
  - id: scan
    kind: scan
    needs: [build]
    retry: { max_attempts: 1 }
    with:
      secrets: { path: "$WS" }
      vulnerabilities: { report: "$WS/trivy.json", fail_on: critical }
  - { id: deploy, kind: noop, needs: [scan], with: { sleep_ms: 200, log: "deployed \${{ steps.build.outputs.artifact }}" } }
  - id: smoke
    kind: smoke-test
    needs: [deploy]
    with: { checks: [ { name: api, url: "$CAPTURE/healthz", expect_json: { status: UP }, max_latency_ms: 500 } ], attempts: 3, interval: 500ms }
finally:
  - id: slack
    kind: notify
    with: { channel: slack, webhook_url: "\${{ secrets.SLACK_WEBHOOK }}", message: "demo-service \${{ run.short_sha }} in \${{ run.environment }}: \${{ run.outcome }}", link: "$GANTRY_URL/v1/runs/\${{ run.id }}" }
  - id: webhook
    kind: notify
    with: { channel: webhook, url: "$CAPTURE/hooks/deployments", secret: "\${{ secrets.HOOK_SECRET }}" }
YAML

say "CI: a clean workspace — build, scan (one HIGH finding; the gate is fail_on: critical), deploy, smoke test, notifications"
GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/service.yml" --sha $SHA --wait || echo "exit $?"
SERVICE_RUN=$(GANTRY_TOKEN=$CI $G runs --limit 1 | awk '{print $1}')
GANTRY_TOKEN=$CI $G logs "$SERVICE_RUN" --step build
GANTRY_TOKEN=$CI $G logs "$SERVICE_RUN" --step scan

say "CI: someone commits a cloud key — the scan gate closes and the deployment never starts"
mkdir -p "$WS/config" && printf 'LOG_LEVEL=info\naws_access_key_id = %s%s\n' AKIA Q3EGRTLMXW7PZ2NB >"$WS/config/prod.env"
GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/service.yml" --sha 7c4e2b1 --wait || echo "exit $?"
BLOCKED_RUN=$(GANTRY_TOKEN=$CI $G runs --limit 1 | awk '{print $1}')
GANTRY_TOKEN=$CI $G logs "$BLOCKED_RUN" --step scan

say "what the stand-in Slack and webhook receiver got (the receiver checked each HMAC signature)"
python3 - "$LOGS/captured.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    body = json.loads(r["body"])
    if r["path"].startswith("/slack/"):
        print(f"slack    {body['text']}")
    else:
        print(f"webhook  {body['event']:<12} run {body['run']['id']}  signature {r.get('signature')}")
PY

# ---------------------------------------------------------------------------
say "production's protection, held by the server from now on (gantry environment apply, as an admin): the demo pipelines above could no longer run there"
$G environment apply environments/production.yml --namespace "$NS" --database-url "$GANTRY_ADMIN_DATABASE_URL"

say "production, end to end (pipelines/production.yml on its own worker pool): approval, scan, backup to S3, blue-green per service behind nginx, smoke test, metrics watch"
# shellcheck disable=SC1091
. .gantry/s3-credentials
AWS_ENDPOINT_URL_S3="$GANTRY_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" AWS_REGION=us-east-1 \
GANTRY_SECRET_SLACK_WEBHOOK="$SLACK_URL" GANTRY_SECRET_PAGERDUTY_ROUTING_KEY="$PD_KEY" \
  gantry_worker --namespace "$NS" --pool production --kind scan,backup,deploy,smoke-test,metrics-watch,notify --id worker-prod --concurrency 8 --lease 10s \
  --state-dir "$PWD/$LOGS/local" >"$LOGS/worker-prod.log" 2>&1 & pids+=($!)
GOOD=a1b2c3d4e5f60718293a4b5c6d7e8f9012345678
BAD=badc0ffee0ddf00d1234567890abcdef12345678
REL="$PWD/$LOGS/releases"
for sha in $GOOD $BAD; do
  mkdir -p "$REL/$sha/bin"
  extra=""; [ $sha = $BAD ] && extra="--error-rate 0.3"   # the injected failure: 3 requests in 10 fail
  for svc in api billing; do
    printf '#!/bin/sh\nexec python3 %s --version %s-%s %s\n' "$PWD/scripts/sample-service.py" "$svc" "${sha:0:7}" "$extra" >"$REL/$sha/bin/$svc"
    chmod +x "$REL/$sha/bin/$svc"
  done
done
PW="$PWD/$LOGS/prod-workspace"; mkdir -p "$PW/src" "$PW/reports"
echo 'export const ok = true' >"$PW/src/app.js"
echo '{"SchemaVersion": 2, "ArtifactName": "registry.local/api", "Results": []}' >"$PW/reports/trivy.json"
DATA="$PWD/$LOGS/prod-data"; mkdir -p "$DATA/uploads"; date >"$DATA/uploads/ledger.txt"; echo "tenant: acme" >"$DATA/config.yaml"
PARAMS=(--param "workspace=$PW" --param "releases=$REL" --param "data_dir=$DATA" --param "pagerduty_url=$CAPTURE/pagerduty/enqueue")
# Traffic for the metrics watch: a client calling the api through nginx all along.
( while :; do curl -s -o /dev/null --max-time 1 http://127.0.0.1:8300/ || true; sleep 0.02; done ) & pids+=($!)

for sha in $GOOD $BAD; do
  GANTRY_TOKEN=$CI $G submit --pipeline "$LOGS/staging.yml" --sha $sha --wait >/dev/null || true
done
echo "both SHAs passed staging (promote_from: staging)"
echo "production's policy refuses what the pipeline file alone would have let through:"
GANTRY_TOKEN=$CI $G submit --pipeline pipelines/production.yml --sha $GOOD --ref feature/x --confirm "DEPLOY TO PRODUCTION" "${PARAMS[@]}" 2>&1 | sed 's/^/  /' || true

prod_run() {  # sha → waits for approval, alice approves, follows the run to its end
  local run status
  run=$(GANTRY_TOKEN=$CI $G submit --pipeline pipelines/production.yml --sha "$1" --ref main --confirm "DEPLOY TO PRODUCTION" "${PARAMS[@]}" | awk '{print $1}')
  for i in $(seq 1 80); do
    GANTRY_TOKEN=$CI $G run "$run" | grep -q "waiting for approval" && break; sleep 0.25
  done
  GANTRY_TOKEN=$ALICE $G approve "$run" --step approval --comment "change reviewed" >/dev/null && echo "alice approved $run"
  for i in $(seq 1 240); do
    status=$(GANTRY_TOKEN=$CI $G run "$run" | awk 'NR == 1 {print $3}')
    [ "$status" = SUCCEEDED ] || [ "$status" = FAILED ] || [ "$status" = CANCELED ] && break
    sleep 0.5
  done
  GANTRY_TOKEN=$CI $G run "$run"
  LAST_RUN=$run
}

say "production #1: ${GOOD:0:7} (healthy)"
prod_run $GOOD
echo "curl 127.0.0.1:8300 → $(curl -s 127.0.0.1:8300/)"
echo "curl 127.0.0.1:8301 → $(curl -s 127.0.0.1:8301/)"
AWS_ENDPOINT_URL_S3="$GANTRY_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
  $G backup list "s3://gantry-backups/production/$LAST_RUN/"

say "production #2: ${BAD:0:7}, whose api fails 30% of requests — the metrics watch catches it, the run rolls back and opens an incident"
prod_run $BAD
echo "curl 127.0.0.1:8300 → $(curl -s 127.0.0.1:8300/)   (back on the healthy release)"
GANTRY_TOKEN=$CI $G logs "$LAST_RUN" --step watch

say "what PagerDuty and Slack were sent"
python3 - "$LOGS/captured.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    body = json.loads(r["body"])
    if r["path"].startswith("/pagerduty"):
        print(f"pagerduty {body['event_action']} dedup_key={body['dedup_key']} severity={body['payload']['severity']}: {body['payload']['summary']}")
    elif r["path"].startswith("/slack/") and body["text"].startswith("production"):
        print(f"slack     {body['text']}")
PY

say "every deploy, from the ledger (the deployments view an auditor or a DORA report reads)"
psql "$GANTRY_AUDITOR_DATABASE_URL" -q -c "
  SELECT d.service, d.action, d.strategy, d.version, coalesce(d.previous_version, '') AS previous, d.status, coalesce(d.result, '') AS result
  FROM deployments d WHERE d.namespace = '$NS' ORDER BY d.finished_at;"

say "every run of this demo (gantry runs)"
GANTRY_TOKEN=$CI $G runs

say "the audit of API actions, accepted and refused, with the token's name"
psql "$GANTRY_DATABASE_URL" -q -c "SELECT at::time(0), actor, action, accepted, coalesce(reason, '') AS reason FROM actions WHERE namespace = '$NS' ORDER BY seq;"
echo "logs: $LOGS/"
