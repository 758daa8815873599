use super::StorySink;
use std::sync::Mutex;
use storyline_model::Story;

/// Keeps published stories in memory: for tests and for embedding Storyline as a library.
#[derive(Default)]
pub struct MemorySink {
    stories: Mutex<Vec<Story>>,
}

impl MemorySink {
    pub fn take(&self) -> Vec<Story> {
        std::mem::take(&mut *self.stories.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn len(&self) -> usize {
        self.stories.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StorySink for MemorySink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        self.stories
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(stories);
        Ok(())
    }
}
