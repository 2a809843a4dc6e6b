# The two commands a newcomer runs: `make demo` and `make test`.
# Both install what they need, start Redis and Postgres on loopback (state under
# .gantry/), and stop them by PID when they are done.

SWIFT ?= swift
SERVICES := scripts/services.sh
CONFIG ?= debug

.PHONY: all build release demo test test-unit test-integration bench soak services stop clean

all: build

build:
	$(SERVICES) install
	$(SWIFT) build -c $(CONFIG)

release:
	$(SERVICES) install
	SWIFT=$(SWIFT) scripts/build-release.sh

## make demo: a dispatcher and workers run a batch of noop steps with retries,
## a timeout and a SIGKILLed worker, then the attempts are printed from Postgres.
demo:
	scripts/demo.sh

## make test: every test, against real Redis and Postgres started for the run.
test:
	scripts/test.sh

## make bench: the throughput and latency benchmark (results: docs/benchmarks.md).
bench:
	scripts/bench.sh $(ARGS)

services:
	$(SERVICES) start

stop:
	$(SERVICES) stop

clean: stop
	rm -rf .build .gantry
