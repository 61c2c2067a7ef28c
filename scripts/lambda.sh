#!/usr/bin/env bash
# `make lambda`: the function's zip with cargo-lambda (installed from PyPI with its zig
# linker when missing), for arm64 (the template's default): the aarch64-unknown-linux-gnu
# Rust target is added with rustup when missing. `LAMBDA_ARCH=x86_64 make lambda` builds
# x86_64 instead (deploy that with `--parameter-overrides Architecture=x86_64`); so does
# a machine where the target cannot be added, and it says so. zig links against Lambda's
# glibc, so the binary runs on provided.al2023 whatever the build machine's glibc is.
set -euo pipefail
CARGO_LAMBDA_VERSION=1.9.2

if ! cargo lambda --version 2>/dev/null | grep -q "^cargo-lambda $CARGO_LAMBDA_VERSION"; then
  echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION (PyPI, brings the zig linker)"
  python3 -m pip install -q "cargo-lambda==$CARGO_LAMBDA_VERSION"
  hash -r
fi

arch=${LAMBDA_ARCH:-arm64}
if [ "$arch" = arm64 ] && ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  echo "adding the aarch64-unknown-linux-gnu Rust target (rustup)"
  if ! rustup target add aarch64-unknown-linux-gnu; then
    arch=x86_64
    echo "note: the aarch64 target could not be added; building x86_64" >&2
    echo "      (deploy it with --parameter-overrides Architecture=x86_64)" >&2
  fi
fi
case "$arch" in
  arm64) flag=--arm64 ;;
  x86_64) flag=--x86-64 ;;
  *) echo "LAMBDA_ARCH must be arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac

# LAMBDA_INCLUDE: files to put in the zip beside bootstrap (they land in /var/task), e.g.
# the RDS CA bundle for a source URL's sslrootcert=/var/task/global-bundle.pem.
include=()
for f in ${LAMBDA_INCLUDE:-}; do
  [ -f "$f" ] || { echo "LAMBDA_INCLUDE: $f is not a file" >&2; exit 2; }
  include+=(--include "$f")
done
cargo lambda build --release "$flag" --bin redshift-loader --output-format zip "${include[@]}"
target=${CARGO_TARGET_DIR:-target}
zip="$target/lambda/redshift-loader/bootstrap.zip"
size=$(stat -c %s "$zip")
awk -v z="$zip" -v a="$arch" -v s="$size" 'BEGIN { printf "%s (%s): %d bytes (%.1f MiB)\n", z, a, s, s / 1048576 }'
