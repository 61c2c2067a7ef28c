#!/usr/bin/env bash
# `make lambda`: the function's zip with cargo-lambda (installed from PyPI with its zig
# linker when missing), for the architecture whose Rust target is installed: arm64 (the
# template's default) when `aarch64-unknown-linux-gnu` is, else x86_64 (deploy that with
# `--parameter-overrides Architecture=x86_64`). zig links against Lambda's glibc, so the
# binary runs on provided.al2023 whatever the build machine's glibc is.
set -euo pipefail
CARGO_LAMBDA_VERSION=1.9.2

if ! cargo lambda --version 2>/dev/null | grep -q "^cargo-lambda $CARGO_LAMBDA_VERSION"; then
  echo "installing cargo-lambda==$CARGO_LAMBDA_VERSION (PyPI, brings the zig linker)"
  python3 -m pip install -q "cargo-lambda==$CARGO_LAMBDA_VERSION"
  hash -r
fi

if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  arch=arm64; flag=--arm64
else
  arch=x86_64; flag=--x86-64
  echo "note: the aarch64-unknown-linux-gnu Rust target is not installed; building x86_64"
  echo "      (rustup target add aarch64-unknown-linux-gnu for the template's default arm64)"
fi

cargo lambda build --release "$flag" --bin redshift-loader --output-format zip
target=${CARGO_TARGET_DIR:-target}
zip="$target/lambda/redshift-loader/bootstrap.zip"
size=$(stat -c %s "$zip")
awk -v z="$zip" -v a="$arch" -v s="$size" 'BEGIN { printf "%s (%s): %d bytes (%.1f MiB)\n", z, a, s, s / 1048576 }'
