#!/usr/bin/env bash
# Installs what the tests and the demo need, skipping what is already there.
# Usage: scripts/deps.sh MOTO_VERSION
set -euo pipefail
moto_version="$1"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${PG_BIN:-}" ]; then
  echo "deps: installing PostgreSQL server binaries"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "deps: no postgres user to run PostgreSQL as; installing postgresql-common"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-common >/dev/null
fi

if ! command -v openssl >/dev/null 2>&1; then
  echo "deps: installing openssl (the TLS test makes its own CA)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

python="${MOTO_PYTHON:-python3}"
pip_install() {
  "$python" -m pip install -q --disable-pip-version-check --break-system-packages "$@" 2>/dev/null \
    || "$python" -m pip install -q --disable-pip-version-check "$@"
}
if ! "$python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  echo "deps: installing moto[server]==$moto_version"
  pip_install "moto[server]==$moto_version"
fi
if ! command -v cfn-lint >/dev/null 2>&1; then
  echo "deps: installing cfn-lint"
  pip_install cfn-lint
fi
