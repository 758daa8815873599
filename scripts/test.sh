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

# The syslog source tests (crates/server/tests/sources.rs, syslog_tls.rs) run the real `logger` (bsdutils) and
# `rsyslogd` (rsyslog, with rsyslog-gnutls for TLS); STORYLINE_REQUIRE_TOOLS=1 makes them fail, not skip, if the tools are missing.
if ! command -v logger >/dev/null || ! { command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ]; } \
  || ! { compgen -G "/usr/lib/*/rsyslog/lmnsd_gtls.so" || compgen -G "/usr/lib*/rsyslog/lmnsd_gtls.so"; } >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "logger, rsyslogd and its gtls driver are needed: apt-get install -y rsyslog rsyslog-gnutls bsdutils (as root)" >&2
    exit 1
  fi
  echo "installing rsyslog, rsyslog-gnutls and bsdutils (apt-get) for the syslog source tests"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog rsyslog-gnutls bsdutils >/dev/null
fi
export STORYLINE_REQUIRE_TOOLS=1

# A clean clone gains nothing from incremental compilation, and its caches are GBs of disk; a developer who
# wants it sets CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
report_disk() {
  echo "disk $1: $(df -h --output=avail . | tail -1 | tr -d ' ') free here, $(df -h --output=avail /tmp | tail -1 | tr -d ' ') in /tmp"
}
report_disk "before the build"

# Formatting is part of the suite so a red diff is caught before review; so are clippy's lints (the
# workspace is clean of them, every target, default features, the two feature builds tested below and the
# server's ScyllaDB build).
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The feature builds are linted with the same package and feature selection as their test runs below, so cargo
# resolves the same dependency features: no combination is checked that the suite does not build anyway, and
# the test builds reuse these runs of the dependencies' build scripts.
cargo clippy -p storyline-store --features scylla --all-targets -- -D warnings
cargo clippy -p storyline-io --features parquet --all-targets -- -D warnings
# The server's ScyllaDB connection (`--features scylla`, the documented deploy build) is compiled by nothing
# else in the suite: linting it is what keeps that build from breaking unnoticed.
cargo clippy -p storyline-server --features scylla --all-targets -- -D warnings

# PostgreSQL for the store's PostgreSQL backend tests (crates/store/tests/postgres.rs). With STORYLINE_TEST_PG
# already set (a libpq connection string) that server is used; otherwise a throwaway server is installed if
# needed, started on 127.0.0.1 and a free port, and stopped on exit. STORYLINE_REQUIRE_PG=1 makes the tests
# fail instead of skipping when no server is reachable.
PG_AS=()
start_test_postgres() {
  local bindir="" d
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    bindir="$(dirname "$(readlink -f "$(command -v initdb)")")"
  fi
  if [ -z "$bindir" ]; then
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
      if [ -x "$d/initdb" ]; then bindir="$d"; break; fi
    done
  fi
  if [ -z "$bindir" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL server binaries (initdb) not found: install the postgresql package, or set" >&2
      echo "STORYLINE_TEST_PG to a libpq connection string of a server the tests may create schemas on." >&2
      exit 1
    fi
    echo "installing PostgreSQL (apt-get) for the store's PostgreSQL tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
      if [ -x "$d/initdb" ]; then bindir="$d"; break; fi
    done
    if [ -z "$bindir" ]; then
      echo "apt-get installed postgresql but no initdb was found under /usr/lib/postgresql/*/bin" >&2
      exit 1
    fi
  fi

  # PostgreSQL refuses to run as root: as root, run the server as the `postgres` system user.
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
    if command -v runuser >/dev/null; then PG_AS=(runuser -u postgres --); else PG_AS=(su postgres -s /bin/bash -c); fi
  fi

  PG_BINDIR="$bindir"
  PG_TMP="$(mktemp -d /tmp/storyline-pg.XXXXXX)"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_TMP"; fi
  trap stop_test_postgres EXIT
  (cd "$PG_TMP" && run_pg "$bindir/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$PG_TMP/initdb.log" 2>&1) || { cat "$PG_TMP/initdb.log" >&2; exit 1; }

  local port started=""
  for port in $(seq 5433 5532); do
    # Skip ports something already listens on; a start that still fails (a race) tries the next one.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    if (cd "$PG_TMP" && run_pg "$bindir/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $PG_TMP" start >/dev/null); then
      started="$port"
      break
    fi
  done
  if [ -z "$started" ]; then
    echo "could not start the test PostgreSQL server:" >&2
    cat "$PG_TMP/server.log" >&2 || true
    exit 1
  fi
  export STORYLINE_TEST_PG="host=127.0.0.1 port=$started user=postgres dbname=postgres"
  export STORYLINE_REQUIRE_PG=1
  local i
  for i in $(seq 1 60); do
    if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$started"; then break; fi
    sleep 0.5
  done
  echo "test PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$started (data in $PG_TMP)"
}

# Runs a PostgreSQL program as the user that may run it (see PG_AS).
run_pg() {
  if [ "${PG_AS[0]:-}" = su ]; then
    "${PG_AS[@]}" "$(printf '%q ' "$@")"
  elif [ "${#PG_AS[@]}" -gt 0 ]; then
    "${PG_AS[@]}" "$@"
  else
    "$@"
  fi
}

stop_test_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    (cd "$PG_TMP" && run_pg "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m fast -w stop >/dev/null 2>&1) || true
  fi
  if [ -n "${PG_TMP:-}" ]; then rm -rf "$PG_TMP"; fi
}

if [ -z "${STORYLINE_TEST_PG:-}" ]; then
  start_test_postgres
fi

cargo nextest run --workspace --no-fail-fast "$@"
# The ScyllaDB backend is behind a cargo feature (its driver is not in the default build): its unit tests
# run here; its conformance suite needs STORYLINE_TEST_SCYLLA=host:port (no server installs on this machine).
cargo nextest run -p storyline-store --features scylla --no-fail-fast "$@"
# Parquet objects of the object_store sink are behind storyline-io's `parquet` feature (arrow + parquet).
cargo nextest run -p storyline-io --features parquet --no-fail-fast "$@"
# nextest does not run doctests.
cargo test --workspace --doc --quiet
report_disk "after the suite"
