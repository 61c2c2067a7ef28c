#!/usr/bin/env bash
# make coldstart: the function's cold start on the local stack, release build.
#
# Starts `testkit up`, loads the demo shop once (so the stack is warm and the job is
# caught up), then `testkit invoke --repeat N` starts the function N times, each a fresh
# process under a fresh Runtime API, with a run event for the caught-up job. Prints, per
# start and as median/max: *init* (spawn to the first poll for an event, Lambda's
# `Init Duration`) and *first response* (spawn to the answer), then the median of each
# init step the function logs (`init finished`, src/lambda.rs).
#
# COLDSTART_REPEAT=N sets N (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${COLDSTART_REPEAT:-20}

work=$(mktemp -d)
stack_pid=""
cleanup() {
  if [[ -n "$stack_pid" ]]; then kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building (release loader, testkit)"
cargo build -q --release --bin redshift-loader -p redshift-loader
cargo build -q -p testkit --bin testkit
loader=target/release/redshift-loader
psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
[[ -x "$psql_bin" ]] || psql_bin=psql

echo "== starting the local stack"
target/debug/testkit up --env-file "$work/env" > /dev/null 2> "$work/stack.log" &
stack_pid=$!
for _ in $(seq 1 120); do
  [[ -f "$work/env" ]] && break
  if ! kill -0 "$stack_pid" 2>/dev/null; then cat "$work/stack.log"; exit 1; fi
  sleep 0.5
done
[[ -f "$work/env" ]] || { echo "the stack did not start:"; cat "$work/stack.log"; exit 1; }
# shellcheck disable=SC1091
source "$work/env"

echo "== loading the demo shop once"
"$psql_bin" -X -q -v ON_ERROR_STOP=1 "$SOURCE_DATABASE_URL" -f scripts/demo/shop.sql
cat > "$work/shop.yaml" <<YAML
name: shop
source:
  url_env: SOURCE_DATABASE_URL
destination:
  url_env: REDSHIFT_DATABASE_URL
  schema: shop
frequency: 300
tables:
  - source: public.customers
  - source: public.orders
YAML
"$loader" jobs apply -f "$work/shop.yaml" > /dev/null
"$loader" setup shop > /dev/null
"$loader" run shop > /dev/null
echo '{"action": "run", "job": "shop", "force": true}' > "$work/event.json"

echo "== $reps cold starts"
LOG_FORMAT=json target/debug/testkit invoke "$work/event.json" --repeat "$reps" -- "$loader" \
  > /dev/null 2> "$work/invoke.log" || { cat "$work/invoke.log"; exit 1; }
grep '^cold start\|^over' "$work/invoke.log"
python3 - "$work/invoke.log" <<'PY'
import json, statistics, sys
steps = {}
for line in open(sys.argv[1]):
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if doc.get("message") != "init finished":
        continue
    for part in doc["steps_ms"].split():
        name, ms = part.split("=")
        steps.setdefault(name, []).append(float(ms))
    steps.setdefault("total", []).append(float(doc["total_ms"]))
print("init steps inside the process (median / max ms):")
for name, values in steps.items():
    print(f"  {name:<11} {statistics.median(values):7.1f} / {max(values):7.1f}")
PY
