#!/usr/bin/env bash
# The main job on a fresh machine: build Storyline and run the live demo on the embedded store.
# Extra arguments go to `storyline demo` (e.g. --duration 60s).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin storyline
exec ./target/release/storyline demo "$@"
