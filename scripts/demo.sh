#!/usr/bin/env bash
# make demo: a real sync, end to end, on the local stack.
#
# Starts `testkit up` (PostgreSQL source + warehouse, moto, the Redshift emulator),
# creates a small shop in the source, applies a job, runs setup and a first full load,
# changes rows, runs again, then compares source and warehouse table by table.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
stack_pid=""
cleanup() {
  if [[ -n "$stack_pid" ]]; then kill -TERM "$stack_pid" 2>/dev/null || true; wait "$stack_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

step "building"
cargo build -q --bin redshift-loader -p redshift-loader
cargo build -q -p testkit --bin testkit
loader=target/debug/redshift-loader
psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
[[ -x "$psql_bin" ]] || psql_bin=psql

step "starting the local stack (testkit up)"
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
psql() { "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$@"; }

step "creating the shop in the source database"
psql "$SOURCE_DATABASE_URL" -f scripts/demo/shop.sql

step "applying the job"
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
  - source: public.events
  - source: public.countries
YAML
"$loader" jobs apply -f "$work/shop.yaml"

step "setup: reading the source schema, creating the tables in Redshift"
"$loader" setup shop

step "first run: the initial load"
"$loader" run shop

step "changing rows in the source"
psql "$SOURCE_DATABASE_URL" -f scripts/demo/changes.sql

step "second run: only what changed"
# --force: the job's frequency (300 s) would otherwise say it is not due yet.
"$loader" run shop --force

step "source vs warehouse"
# The same text form on both sides: the warehouse is checked through the PostgreSQL
# behind the emulator (WAREHOUSE_DIRECT_URL), with string_agg and md5.
check() {
  local table=$1 cols=$2 key=$3
  local sql="SELECT count(*) || ' rows, md5 ' || md5(string_agg(concat_ws('|', $cols), ',' ORDER BY $key))"
  local src dst
  src=$(psql -At "$SOURCE_DATABASE_URL" -c "SET TimeZone='UTC'; $sql FROM public.$table")
  dst=$(psql -At "$WAREHOUSE_DIRECT_URL" -c "SET TimeZone='UTC'; $sql FROM shop.$table")
  local verdict="equal"; [[ "$src" == "$dst" ]] || verdict="DIFFERENT"
  printf '%-10s source: %-46s warehouse: %-46s %s\n' "$table" "$src" "$dst" "$verdict"
  [[ "$src" == "$dst" ]]
}
ok=0
check customers "id, name, email, country, vip, created_at, updated_at" id || ok=1
check orders "id, customer_id, status, total, items, note, updated_at" id || ok=1
check events "id, kind, payload, at" id || ok=1
check countries "code, name, vat_rate" code || ok=1

step "verify: the loader's own comparison (keys and content, inside each database)"
"$loader" verify shop || ok=1

if [[ $ok -eq 0 ]]; then step "demo: every table matches"; else step "demo: MISMATCH"; fi
exit $ok
