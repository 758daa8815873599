pub mod bench;
pub mod check;
pub mod dead_letters;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod replay;
pub mod run;
pub mod sinks;
pub mod tenants;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

/// Progress bars only where a person watches: a TTY on stderr.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// A sink that counts the story versions it passed on, for a command's closing summary (so nothing has
/// to read the output back).
pub struct Counting<S> {
    inner: S,
    versions: AtomicU64,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            versions: Default::default(),
        }
    }

    pub fn versions(&self) -> u64 {
        self.versions.load(Ordering::Relaxed)
    }
}

impl<S: storyline_io::StorySink> storyline_io::StorySink for Counting<S> {
    fn publish(&self, stories: &[storyline_model::Story]) -> anyhow::Result<()> {
        self.inner.publish(stories)?;
        self.versions
            .fetch_add(stories.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
