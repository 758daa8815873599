//! Types every Storyline crate speaks: the canonical event (ECS field names), the published story,
//! event ids, time, and the keys that route an event to its shard.

pub mod community_id;
pub mod event;
pub mod event_codec;
pub mod ids;
pub mod json_text;
pub mod parts;
pub mod prefetch;
pub mod routing;
pub mod story;
mod story_json;
pub mod time;

pub use event::*;
pub use ids::{EventId, EventKey, StoryId};
pub use story::*;
pub use time::Timestamp;

/// Short strings inline up to 24 bytes: most field values (IPs as text, hostnames, actions) avoid a heap
/// allocation per event.
pub type Str = compact_str::CompactString;
