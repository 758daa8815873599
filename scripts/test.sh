#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Formatting is part of the suite so a red diff is caught before review.
cargo fmt --all -- --check
cargo nextest run --workspace --no-fail-fast "$@"
# nextest does not run doctests.
cargo test --workspace --doc --quiet
