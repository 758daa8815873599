//! Sinks: where stories go.
//!
//! - Synchronous sinks ([`file`], [`stdout`], [`pretty`], [`memory`]) implement [`StorySink`] directly:
//!   `[output]`, `storyline replay` and the demo use them.
//! - Delivery sinks (`[[sinks]]`, docs/sinks.md) go through a [`fanout::SinkFanout`]: each has its own
//!   durable, bounded [`backlog`] and a delivery thread ([`deliver`]) that sends to its [`deliver::Target`]
//!   ([`http`], [`syslog`], [`object`], [`file`], stdout) in one of the [`encode`] encodings, with
//!   retries and dead letters.

pub mod backlog;
pub mod config;
pub mod deliver;
mod direct;
pub mod encode;
pub mod fanout;
pub mod file;
pub mod http;
pub mod memory;
pub mod object;
pub mod pretty;
pub mod stdout;
pub mod syslog;
pub mod targets;

pub use config::SinkConfig;
pub use fanout::SinkFanout;

use storyline_model::Story;

/// A destination for story versions. `publish` returns only once the stories are delivered (written and
/// synced, for files; appended to every sink's durable backlog, for [`SinkFanout`]): workers commit their
/// read offset after it returns, so a sink that acknowledged early could lose stories in a crash. Delivery
/// is at least once: after a crash a version may come again, with the same `story_id` and `version`, so
/// receivers can dedupe.
pub trait StorySink: Send + Sync {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()>;
}

impl<T: StorySink + ?Sized> StorySink for std::sync::Arc<T> {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        (**self).publish(stories)
    }
}

/// Publishes to several sinks in turn.
pub struct Fanout(pub Vec<Box<dyn StorySink>>);

impl StorySink for Fanout {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        for s in &self.0 {
            s.publish(stories)?;
        }
        Ok(())
    }
}

/// One NDJSON line per story version, absent fields removed.
pub fn story_line(story: &Story, buf: &mut Vec<u8>) {
    story.write_json(buf);
    buf.push(b'\n');
}
