//! PostgreSQL for the binary's tests: the shared test server (`STORYLINE_TEST_PG`, a fresh schema per test)
//! or a throwaway cluster of a test's own that it may stop and start (initdb/pg_ctl, as scripts/test.sh
//! does). Include with `#[path = "common/pg.rs"] mod pg;`.

#![allow(dead_code)]

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn require_pg() -> bool {
    std::env::var("STORYLINE_REQUIRE_PG").as_deref() == Ok("1")
}

/// The test server's connection string, or `None` (after saying so) when the test should skip.
pub fn test_server() -> Option<String> {
    match std::env::var("STORYLINE_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !require_pg(),
                "STORYLINE_REQUIRE_PG=1 but STORYLINE_TEST_PG is not set: set it to a libpq connection string such \
                 as `host=127.0.0.1 port=5433 user=postgres dbname=postgres` (scripts/test.sh starts a throwaway \
                 server and sets both)"
            );
            println!("skipped: STORYLINE_TEST_PG not set");
            None
        }
    }
}

pub fn random_schema(prefix: &str) -> String {
    let h = std::collections::hash_map::RandomState::new()
        .hash_one((std::process::id(), std::time::SystemTime::now()));
    format!("{prefix}_{h:016x}")
}

/// A schema of its own on the test server, dropped with everything in it when the test ends.
pub struct FreshSchema {
    pub url: String,
    pub schema: String,
}

impl FreshSchema {
    pub fn new(url: &str, prefix: &str) -> FreshSchema {
        FreshSchema {
            url: url.to_string(),
            schema: random_schema(prefix),
        }
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url))
    }
}

impl Drop for FreshSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ));
        }
    }
}

/// A config for fast tests on PostgreSQL (as `common::write_config`, plus the store and partitions).
pub fn write_pg_config(
    dir: &Path,
    port: u16,
    url: &str,
    schema: &str,
    partitions: u16,
    workers: usize,
) -> PathBuf {
    let cfg = format!(
        r#"tenant = "t"
data_dir = "{data}"
listen = "127.0.0.1:{port}"

[store]
kind = "postgres"
url = "{url}"
schema = "{schema}"

[output]
kind = "file"
path = "{out}"

[pipeline]
shards = 4
partitions = {partitions}
workers = {workers}
bucket = "200ms"
safety_delay = "300ms"
commit_interval = "200ms"
poll_interval = "50ms"
lease_ttl = "1s"

[pipeline.correlate]
gap = "2s"
allowed_lateness = "30s"
"#,
        data = dir.join("data").display(),
        out = dir.join("stories.ndjson").display(),
    );
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("storyline.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// A PostgreSQL cluster of the test's own, in a temporary directory, on 127.0.0.1 and a free port.
pub struct LocalCluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    /// Run the server programs as the `postgres` user (we are root, which PostgreSQL refuses).
    as_postgres: bool,
    running: bool,
}

/// The directory of `initdb` and `pg_ctl`: on PATH, else the newest /usr/lib/postgresql/*/bin.
fn find_bindir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            let initdb = d.join("initdb");
            if initdb.is_file() && d.join("pg_ctl").is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, d)| d)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl LocalCluster {
    /// Creates the cluster (initdb) without starting it. `None` (after saying so) when the PostgreSQL server
    /// programs are not installed, unless STORYLINE_REQUIRE_PG=1 makes that a failure.
    pub fn init() -> Option<LocalCluster> {
        let Some(bindir) = find_bindir() else {
            assert!(
                !require_pg(),
                "STORYLINE_REQUIRE_PG=1 but the PostgreSQL server programs (initdb, pg_ctl) are not on PATH or \
                 under /usr/lib/postgresql/*/bin: install the postgresql package"
            );
            println!("skipped: initdb not found (install the postgresql package)");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("storyline-pg-")
            .tempdir()
            .unwrap();
        if as_postgres {
            if Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| !o.status.success())
            {
                let ok = Command::new("useradd")
                    .args([
                        "--system",
                        "--home-dir",
                        "/var/lib/postgresql",
                        "--shell",
                        "/bin/bash",
                    ])
                    .arg("postgres")
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "useradd postgres failed");
            }
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown postgres {} failed", dir.path().display());
        }
        let c = LocalCluster {
            bindir,
            dir,
            port: crate::common::free_port(),
            as_postgres,
            running: false,
        };
        let data = c.data();
        let out = c
            .pg("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// libpq connection string of this cluster (connects fail fast while it is down).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=5",
            self.port
        )
    }

    pub fn start(&mut self) {
        let opts = format!(
            "-h 127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
        self.running = true;
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.url(), postgres::NoTls).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not accept connections"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl stop -m fast`: connections are terminated, transactions in flight roll back.
    pub fn stop(&mut self) {
        let out = self
            .pg("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .pg("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}

/// A running `storyline run` that is SIGKILLed if the test fails before stopping it (so a failed test
/// leaves no process behind holding its output pipes).
pub struct Guarded(pub Option<crate::common::Server>);

impl Guarded {
    pub fn get(&self) -> &crate::common::Server {
        self.0.as_ref().expect("server running")
    }

    pub fn take(&mut self) -> crate::common::Server {
        self.0.take().expect("server running")
    }

    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(mut s) = self.0.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}
