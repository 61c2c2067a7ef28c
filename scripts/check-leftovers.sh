#!/usr/bin/env bash
# Fails when a test server outlived the tests: every PostgreSQL cluster and moto server
# the test kit starts is tied to its test process and must be gone once it exits.
set -uo pipefail
pattern='moto\.server|postgres -D .*/testkit-'
for _ in $(seq 1 50); do
  if ! pgrep -f "$pattern" >/dev/null; then
    echo "check-leftovers: no test servers left running"
    exit 0
  fi
  sleep 0.1   # the kernel delivers the parent-death signal asynchronously
done
echo "check-leftovers: test servers still running after the tests:" >&2
pgrep -af "$pattern" >&2
exit 1
