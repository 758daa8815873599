#!/usr/bin/env bash
# Story quality on generated traffic, Storyline beside the 5-tuple baseline, for docs/correlation.md.
# Usage: scripts/eval.sh [EVENTS]   (needs a release build: cargo build --release)
# REPLAY_ARGS="--dns-links-use-clock-offsets true" scripts/eval.sh 50000   passes options to every replay.
set -euo pipefail
cd "$(dirname "$0")/.."
S=./target/release/storyline
N=${1:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
row() {
  local name=$1; shift
  "$S" generate --events "$N" --seed 7 --out "$work/g" "$@" >/dev/null 2>&1
  "$S" replay --input "$work/g/events.ndjson" --output "$work/s.ndjson" ${REPLAY_ARGS:-} >/dev/null 2>&1
  "$S" eval --truth "$work/g/truth.ndjson" --stories "$work/s.ndjson" --baseline-events "$work/g/events.ndjson" --json |
    python3 scripts/eval_row.py "$name $*"
}
echo "| setting | precision | recall | F1 | exact stories | baseline precision | baseline recall | baseline F1 |"
echo "|---|---|---|---|---|---|---|---|"
row "defaults:" --skew 5s --reversed 0.2 --nat 0.3 --late 0.1 --max-late 8m
row "no skew:" --skew 0s
row "skew:" --skew 10s
row "reversed:" --reversed 0.5
row "NAT:" --nat 0.7
row "late:" --late 0.3 --max-late 8m
row "no DNS:" --dns 0
row "busy (1000 sessions/s):" --rate 1000
