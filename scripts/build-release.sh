#!/usr/bin/env bash
# The release build every script uses (make release, make demo, make bench), as a
# deployment would build it: the Swift runtime linked statically (2-3 MB less resident per
# process than the shared runtime), linked by lld with packed relative relocations
# (DT_RELR: the loader reads ~20 KB of them instead of 2.7 MB at every start, ~2 MB less
# resident per process; docs/benchmarks.md). Extra arguments go to swift build.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${SWIFT:-swift}" build -c release --static-swift-stdlib \
  -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs "$@"
