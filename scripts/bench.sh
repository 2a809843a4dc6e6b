#!/usr/bin/env bash
# `make bench`: starts the services, builds in release mode and runs
# `gantry bench` with the figures of docs/benchmarks.md, in a freshly created
# database (gantry_bench) so that runs are comparable. Extra arguments go to
# gantry bench, e.g. `make bench ARGS="--steps 1000000"`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# The release build as a deployment would make it (static Swift runtime, lld, packed relocations).
scripts/build-release.sh 2>&1 | tail -n 1
# shellcheck disable=SC1091
. .gantry/env
scripts/services.sh fresh-bench-db
export GANTRY_DATABASE_URL="${GANTRY_DATABASE_URL%/gantry}/gantry_bench"
export GANTRY_ADMIN_DATABASE_URL="${GANTRY_ADMIN_DATABASE_URL%/gantry}/gantry_bench"
.build/release/gantry migrate --database-url "$GANTRY_ADMIN_DATABASE_URL"
.build/release/gantry bench --steps 100000 --workers 2 --concurrency 64 "$@"
