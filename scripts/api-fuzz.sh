#!/usr/bin/env bash
# Property-based API testing with schemathesis (PyPI) against /openapi.yaml, as a
# submitter scoped to staging would call it: every request the schema allows, and
# malformed ones. It fails on any 5xx, any response outside the schema (status or
# body), and any response slower than 5 s. Bounded: --max-time, and the dispatcher
# it starts is stopped by PID. Needs the servers `make test` starts (.gantry/env).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
. .gantry/env
binary=${GANTRY_BINARY:-$PWD/.build/debug/gantry}
budget=${FUZZ_SECONDS:-120}
if [ ! -x .gantry/venv/bin/schemathesis ]; then
  echo "api-fuzz: installing schemathesis into .gantry/venv (once)"
  .gantry/venv/bin/pip install -q --disable-pip-version-check 'schemathesis>=4,<5'
fi
namespace="fuzz_$(date +%s)_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=.gantry/api-fuzz-dispatcher.log
"$binary" dispatcher --id fuzz --listen "127.0.0.1:$port" --namespace "$namespace" >"$log" 2>&1 &
pid=$!
stop() { kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 100); do
  python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$port/healthz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "api-fuzz: the dispatcher exited:"; cat "$log"; exit 1; }
  sleep 0.1
done
token=$("$binary" token create --database-url "$GANTRY_ADMIN_DATABASE_URL" --name fuzz-ci --role submitter --env staging --namespace "$namespace" 2>/dev/null)
echo "api-fuzz: schemathesis for ${budget}s against 127.0.0.1:$port (submitter token, staging)"
.gantry/venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.yaml" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-response-time 5 --max-time "$budget" --max-examples 40 --workers 2 \
  --request-timeout 10 --suppress-health-check all --seed 7 --warnings off
