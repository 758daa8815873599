use super::{story_line, StorySink};
use std::io::Write;
use storyline_model::Story;

/// NDJSON on standard output.
pub struct StdoutSink;

impl StorySink for StdoutSink {
    fn publish(&self, stories: &[Story]) -> anyhow::Result<()> {
        let mut buf = Vec::with_capacity(stories.len() * 512);
        for s in stories {
            story_line(s, &mut buf);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&buf)?;
        out.flush()?;
        Ok(())
    }
}
