//! A small blocking connection pool.
//!
//! Why not r2d2 / r2d2_postgres: the store needs only "take a connection, give it back, drop it when it
//! broke", plus a per-connection cache of prepared statements. That is ~100 lines here against two more
//! crates, r2d2's background reaper thread and its health-check round trip on every checkout. Connections
//! are opened lazily up to `max` and reused LIFO; a caller that finds every connection busy waits (bounded)
//! for one to come back. A connection whose socket closed is dropped on return and replaced on demand.

use super::Fail;
use crate::{Result, StoreError};
use ::postgres::{Client, NoTls, Statement};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// How long a caller waits for a free connection before giving up with an error.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Pool {
    config: ::postgres::Config,
    /// The server, for messages (never the password).
    pub(crate) describe: String,
    max: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Conn>,
    /// Connections open, idle or checked out.
    open: usize,
}

/// One connection and the statements prepared on it (keyed by their SQL text).
pub(crate) struct Conn {
    pub(crate) client: Client,
    stmts: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement for `sql`, preparing it on first use (one round trip saved on every later
    /// call, and a generic plan once PostgreSQL decides one is good).
    pub(crate) fn stmt(&mut self, sql: &str) -> std::result::Result<Statement, Fail> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
    /// Opened for this checkout (so not a stale idle connection).
    pub(crate) fresh: bool,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("connection present until drop")
    }
}

impl Pooled<'_> {
    /// Closes this connection instead of returning it to the pool.
    pub(crate) fn discard(mut self) {
        if self.conn.take().is_some() {
            self.pool.forget_one();
        }
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.client.is_closed() {
                self.pool.forget_one();
            } else {
                let mut st = self.pool.lock();
                st.idle.push(conn);
                drop(st);
                self.pool.returned.notify_one();
            }
        }
    }
}

impl Pool {
    pub(crate) fn new(config: ::postgres::Config, max: usize) -> Self {
        let describe = describe(&config);
        Self {
            config,
            describe,
            max: max.max(1),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_one(&self) {
        let mut st = self.lock();
        st.open = st.open.saturating_sub(1);
        drop(st);
        self.returned.notify_one();
    }

    pub(crate) fn get(&self) -> Result<Pooled<'_>> {
        let deadline = std::time::Instant::now() + CHECKOUT_TIMEOUT;
        let mut st = self.lock();
        loop {
            if let Some(conn) = st.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    fresh: false,
                });
            }
            if st.open < self.max {
                st.open += 1;
                drop(st);
                return match self.open() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        fresh: true,
                    }),
                    Err(e) => {
                        self.forget_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Engine(format!(
                    "no free PostgreSQL connection to {} after {} s (pool of {})",
                    self.describe,
                    CHECKOUT_TIMEOUT.as_secs(),
                    self.max
                )));
            }
            st = self
                .returned
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Opens a new connection and sets up the session.
    pub(crate) fn open(&self) -> Result<Conn> {
        let mut client = self.config.connect(NoTls).map_err(|e| {
            StoreError::Engine(format!(
                "cannot connect to PostgreSQL at {}: {}",
                self.describe,
                super::pg_message(&e)
            ))
        })?;
        // Acknowledged appends must survive a server crash: refuse to run with commits that return before
        // the WAL is flushed, whatever the server's default says.
        let sync: String = client
            .query_one("SHOW synchronous_commit", &[])
            .map_err(|e| StoreError::Engine(super::pg_message(&e)))?
            .get(0);
        if sync == "off" {
            client
                .batch_execute("SET synchronous_commit TO on")
                .map_err(|e| StoreError::Engine(super::pg_message(&e)))?;
        }
        Ok(Conn {
            client,
            stmts: HashMap::new(),
        })
    }
}

/// `host:port/dbname as user`, for error messages.
fn describe(c: &::postgres::Config) -> String {
    use ::postgres::config::Host;
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = c
                .get_ports()
                .get(i)
                .or(c.get_ports().first())
                .copied()
                .unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    format!(
        "{hosts}/{} as {}",
        c.get_dbname().unwrap_or("(default db)"),
        c.get_user().unwrap_or("(default user)")
    )
}
