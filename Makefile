# redshift-loader — the two commands a newcomer needs:
#   make demo    a real sync, end to end, on the local stack
#   make test    everything CI checks (installs what the tests need first)
#   make bench   throughput and memory on the local stack (BENCHMARKS.md)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
MOTO_VERSION := 5.2.5

.PHONY: all deps test lint unit check-leftovers up demo lambda bench coldstart

all: test

## Install what the tests and the demo need, when it is missing: PostgreSQL server
## binaries (Debian), moto_server (pinned) and cfn-lint (PyPI).
deps:
	@scripts/deps.sh $(MOTO_VERSION)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cfn-lint template.yaml

unit:
	$(CARGO) test --workspace

## The README's test command; CI runs exactly this.
test: deps lint unit check-leftovers

## Every test server must have died with the test process that started it.
check-leftovers:
	@scripts/check-leftovers.sh

## Run the local stack in the foreground and print its environment.
up: deps
	$(CARGO) run -q -p testkit -- up

## The README's demo command: a real sync on the local stack (scripts/demo.sh).
demo: deps
	@scripts/demo.sh

## The function's zip (cargo-lambda, release build) and its size.
lambda:
	@scripts/lambda.sh

## Throughput and peak memory on the local stack, release build (BENCHMARKS.md).
## Options: make bench BENCH_ARGS="--rows 200000 --reps 3 --rss-rows 0"
BENCH_ARGS ?=
bench: deps
	$(CARGO) bench --bench pipeline -- $(BENCH_ARGS)

## The function's cold start (init, first response) on the local stack, release build.
## COLDSTART_REPEAT=N starts (default 20); BENCHMARKS.md, "Cold start".
coldstart: deps
	@scripts/coldstart.sh
