//! The tables the PostgreSQL backend keeps in its schema, their creation and their version.
//!
//! Layout (schema version 1; docs/design.md, "PostgreSQL backend", says why):
//!
//! ```text
//! meta         (key) → value                      schema_version, partition_ms
//! tenants      (tenant) → shards
//! events       (tenant, shard, bucket, event_key uuid) → event bytea, raw bytea
//!              PARTITION BY RANGE (bucket): one partition per `partition_ms` of buckets (default 1 h),
//!              created on demand (CREATE TABLE + ATTACH, which does not block readers or writers)
//! partitions   (name) → lo, hi, blocked_since     the partitions that exist, written with their DDL
//! marks        (tenant, shard, bucket) → mark (from mark_seq), events (rows inserted into the bucket)
//! retention    (tenant, shard) → before           everything below `before` is deleted (hidden at once,
//!                                                 physically gone when its partition is dropped)
//! checkpoints  (tenant, shard, grp) → offset_bucket, mark_buckets[], mark_values[], state
//! leases       (tenant, grp, shard) → owner, epoch, expires_ms
//! dead_letters (id identity) → tenant, received_ns, source, line, format, code, reason, raw
//! ```
//!
//! Tenant names are `text COLLATE "C"`: compared bytewise, like the embedded backend's keys. u64 values
//! (marks, epochs, ids) are stored as bigint; checkpoint marks (which may come from another backend's
//! counter) are stored bit-for-bit as i64.

use super::Fail;
use crate::{Result, StoreError};
use ::postgres::Client;

/// The layout this build reads and writes. Bump it (and add a migration from the previous one) whenever a
/// table changes; a build refuses schemas of a newer version.
pub const SCHEMA_VERSION: i64 = 1;

/// `"name"`: schema names are checked by [`validate_schema`], so quoting never needs escaping.
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// Schema names: 1-63 characters of `a-z`, `0-9` and `_`, not starting with a digit, and not `pg_*`.
pub fn validate_schema(schema: &str) -> Result<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && !schema.starts_with("pg_")
        && !schema.as_bytes()[0].is_ascii_digit()
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Engine(format!(
            "invalid PostgreSQL schema name {schema:?}: use 1-63 characters of a-z, 0-9 and '_', not starting \
             with a digit or 'pg_'"
        )))
    }
}

/// What an existing (or just created) schema says about itself.
pub(crate) struct SchemaInfo {
    pub partition_ms: i64,
}

/// Creates the schema and its tables if missing, or checks the version of existing ones. Runs in one
/// transaction under an advisory lock, so processes starting together neither race nor see half a schema.
pub(crate) fn ensure(client: &mut Client, schema: &str, partition_ms: i64) -> Result<SchemaInfo> {
    ensure_inner(client, schema, partition_ms).map_err(|f| f.into_store())
}

fn ensure_inner(
    client: &mut Client,
    schema: &str,
    partition_ms: i64,
) -> std::result::Result<SchemaInfo, Fail> {
    let s = quote(schema);
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('storyline schema ' || $1, 0))",
        &[&schema],
    )?;
    let meta_exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'meta')",
            &[&schema],
        )?
        .get(0);
    if meta_exists {
        let rows = tx.query(format!("SELECT key, value FROM {s}.meta").as_str(), &[])?;
        let get = |k: &str| {
            rows.iter()
                .find(|r| r.get::<_, &str>(0) == k)
                .map(|r| r.get::<_, String>(1))
        };
        let version = get("schema_version").ok_or_else(|| {
            StoreError::Corrupt(format!(
                "PostgreSQL schema {schema} has a meta table without a schema_version; it was not created \
                 by Storyline (use another schema)"
            ))
        })?;
        let version: i64 = version.parse().map_err(|_| {
            StoreError::Corrupt(format!(
                "PostgreSQL schema {schema} has an unknown schema_version {version:?}; it was not created by \
                 this Storyline (use another schema)"
            ))
        })?;
        if version != SCHEMA_VERSION {
            let what = if version > SCHEMA_VERSION {
                "a newer Storyline; upgrade this binary or use another schema"
            } else {
                "an older layout this build cannot migrate; use another schema"
            };
            return Err(StoreError::Corrupt(format!(
                "PostgreSQL schema {schema} has schema version {version} but this build knows version \
                 {SCHEMA_VERSION}: it was created by {what}"
            ))
            .into());
        }
        let partition_ms = get("partition_ms")
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "PostgreSQL schema {schema}: meta.partition_ms is missing or invalid"
                ))
            })?;
        tx.commit()?;
        return Ok(SchemaInfo { partition_ms });
    }

    let foreign: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')",
            &[&schema],
        )?
        .get(0);
    if foreign > 0 {
        return Err(StoreError::Corrupt(format!(
            "PostgreSQL schema {schema} already holds {foreign} tables that are not Storyline's (no \
             {schema}.meta); use another schema"
        ))
        .into());
    }
    // CREATE SCHEMA needs the CREATE privilege on the database even with IF NOT EXISTS, so a schema an
    // administrator created for us (owned by our role) is used as it is.
    let schema_exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )?
        .get(0);
    if !schema_exists {
        tx.batch_execute(&format!("CREATE SCHEMA {s}"))?;
    }
    tx.batch_execute(&format!(
        r#"
        CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE {s}.tenants (
            tenant text COLLATE "C" PRIMARY KEY,
            shards int4 NOT NULL CHECK (shards > 0)
        );
        CREATE TABLE {s}.events (
            tenant text COLLATE "C" NOT NULL,
            shard int4 NOT NULL,
            bucket int8 NOT NULL,
            event_key uuid NOT NULL,
            event bytea NOT NULL,
            raw bytea NOT NULL,
            PRIMARY KEY (tenant, shard, bucket, event_key)
        ) PARTITION BY RANGE (bucket);
        -- Keep the small encoded event inline (it is what scans read); a large raw record is what TOAST
        -- compresses and moves out of line first.
        ALTER TABLE {s}.events ALTER COLUMN event SET STORAGE MAIN;
        CREATE TABLE {s}.partitions (
            name text PRIMARY KEY,
            lo int8 NOT NULL,
            hi int8 NOT NULL,
            -- First seen entirely below some horizon but still holding someone else's data.
            blocked_since timestamptz
        );
        CREATE SEQUENCE {s}.mark_seq;
        CREATE TABLE {s}.marks (
            tenant text COLLATE "C" NOT NULL,
            shard int4 NOT NULL,
            bucket int8 NOT NULL,
            mark int8 NOT NULL,
            events int8 NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, shard, bucket)
        );
        CREATE INDEX marks_by_bucket ON {s}.marks (bucket);
        CREATE TABLE {s}.retention (
            tenant text COLLATE "C" NOT NULL,
            shard int4 NOT NULL,
            before int8 NOT NULL,
            PRIMARY KEY (tenant, shard)
        );
        CREATE TABLE {s}.checkpoints (
            tenant text COLLATE "C" NOT NULL,
            shard int4 NOT NULL,
            grp text COLLATE "C" NOT NULL,
            offset_bucket int8 NOT NULL,
            mark_buckets int8[] NOT NULL,
            mark_values int8[] NOT NULL,
            state bytea NOT NULL,
            PRIMARY KEY (tenant, shard, grp)
        );
        CREATE TABLE {s}.leases (
            tenant text COLLATE "C" NOT NULL,
            grp text COLLATE "C" NOT NULL,
            shard int4 NOT NULL,
            owner text NOT NULL,
            epoch int8 NOT NULL,
            expires_ms int8 NOT NULL,
            PRIMARY KEY (tenant, grp, shard)
        );
        CREATE TABLE {s}.dead_letters (
            id int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant text COLLATE "C" NOT NULL,
            received_ns int8 NOT NULL,
            source text NOT NULL,
            line int8,
            format text,
            code text NOT NULL,
            reason text NOT NULL,
            raw bytea NOT NULL
        );
        CREATE INDEX dead_letters_by_tenant ON {s}.dead_letters (tenant, id);
        "#
    ))?;
    tx.execute(
        format!(
            "INSERT INTO {s}.meta (key, value) VALUES ('schema_version', $1), ('partition_ms', $2)"
        )
        .as_str(),
        &[&SCHEMA_VERSION.to_string(), &partition_ms.to_string()],
    )?;
    tx.commit()?;
    tracing::info!(schema, "created the Storyline tables in PostgreSQL");
    Ok(SchemaInfo { partition_ms })
}

/// The partition of buckets `[lo, hi)` that holds `bucket`; `None` bounds are MINVALUE / MAXVALUE (only at
/// the very ends of the i64 range).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Part {
    pub index: i64,
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl Part {
    pub fn of(bucket: i64, width: i64) -> Self {
        let index = bucket.div_euclid(width);
        let lo = index.checked_mul(width);
        let hi = lo.and_then(|l| l.checked_add(width));
        Part { index, lo, hi }
    }

    /// `events_20240131_1300` (UTC start of the partition) where that is a date, else `events_p<index>`.
    pub fn name(&self) -> String {
        let by_date = self.lo.and_then(|lo| {
            let t = time::OffsetDateTime::from_unix_timestamp(lo.div_euclid(1000)).ok()?;
            (1000..=9999).contains(&t.year()).then(|| {
                format!(
                    "events_{:04}{:02}{:02}_{:02}{:02}{}",
                    t.year(),
                    t.month() as u8,
                    t.day(),
                    t.hour(),
                    t.minute(),
                    // Sub-minute partitions (tests) need more than the minute to be unique.
                    if lo.rem_euclid(60_000) == 0 {
                        String::new()
                    } else {
                        format!("_{}", lo.rem_euclid(60_000))
                    }
                )
            })
        });
        by_date.unwrap_or_else(|| {
            if self.index < 0 {
                format!("events_pm{}", self.index.unsigned_abs())
            } else {
                format!("events_p{}", self.index)
            }
        })
    }

    pub fn bounds_sql(&self) -> String {
        let b = |v: Option<i64>, inf: &str| v.map_or(inf.to_string(), |v| v.to_string());
        format!(
            "FROM ({}) TO ({})",
            b(self.lo, "MINVALUE"),
            b(self.hi, "MAXVALUE")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_named_by_their_start() {
        let h = 3_600_000;
        assert_eq!(Part::of(0, h).name(), "events_19700101_0000");
        assert_eq!(Part::of(1_000, h).name(), "events_19700101_0000");
        assert_eq!(
            Part::of(1_706_706_000_123, h).name(),
            "events_20240131_1300"
        );
        assert_eq!(Part::of(-1, h).name(), "events_19691231_2300");
        assert_eq!(Part::of(1_500, 1_000).name(), "events_19700101_0000_1000");
        assert_eq!(Part::of(i64::MAX, h).hi, None);
        assert_eq!(Part::of(i64::MIN, 7).lo, None);
        assert!(Part::of(i64::MIN, 7).name().starts_with("events_pm"));
        assert_eq!(Part::of(5, 10).bounds_sql(), "FROM (0) TO (10)");
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(validate_schema("storyline").is_ok());
        assert!(validate_schema("t_1").is_ok());
        for bad in [
            "",
            "1a",
            "pg_x",
            "Storyline",
            "a-b",
            "a\"b",
            &"x".repeat(64),
        ] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }
}
