pub mod file;
pub mod memory;
pub mod pretty;
pub mod stdout;

use storyline_model::Story;

/// A destination for story versions. `publish` returns only once the stories are delivered (written and
/// synced, for files): workers commit their read offset after it returns, so a sink that acknowledged
/// early could lose stories in a crash. Delivery is at least once: after a crash a version may come again,
/// with the same `story_id` and `version`, so receivers can dedupe.
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
    serde_json::to_writer(&mut *buf, &story.to_json()).expect("writing JSON to a Vec cannot fail");
    buf.push(b'\n');
}
