//! Reading stories in bulk with their heap blocks loaded ahead, and the cache hints that does it with
//! (also used by the engine's bulk passes over its story states).
//!
//! Encoding a catch-up's few hundred thousand story versions is bound by memory latency, not by the
//! encoding: each version's lists (members, sensors, provenance, the fused record and its name lists)
//! are separate heap blocks, long out of cache since the story was built, and the encoder stalled on the
//! first byte of each (83% of the samples of the string-list writer sat on that one load in a 1M-event
//! replay's final publication). Asking for the blocks of the versions a few places ahead lets those
//! loads overlap the encoding of the current one.

use crate::Story;

/// Which part of an item a bulk pass requests ahead: the item's own block first, then — nearer, once
/// that block has arrived to be read — the blocks it points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Own,
    Behind,
}

/// How many places ahead of the current item its own block is requested.
pub const OWN_AHEAD: usize = 4;
/// How many places ahead the blocks behind it are requested.
pub const BEHIND_AHEAD: usize = 2;

/// For a bulk pass about to work on `rest[0]`: requests the own block of the item [`OWN_AHEAD`] places on
/// and the blocks behind the item [`BEHIND_AHEAD`] places on.
pub fn request_ahead<T>(rest: &[T], request: impl Fn(&T, Stage)) {
    if let Some(ahead) = rest.get(OWN_AHEAD) {
        request(ahead, Stage::Own);
    }
    if let Some(near) = rest.get(BEHIND_AHEAD) {
        request(near, Stage::Behind);
    }
}

/// Calls `f` on each story in order, requesting the memory of the stories a few places ahead first.
pub fn for_each_prefetched<'a>(stories: &'a [Story], mut f: impl FnMut(&'a Story)) {
    for i in 0..stories.len() {
        request_ahead(&stories[i..], Story::prefetch);
        f(&stories[i]);
    }
}

impl Story {
    fn prefetch(&self, stage: Stage) {
        match stage {
            Stage::Own => {
                prefetch(&*self.fused);
                prefetch_list(&self.event_ids);
                prefetch_list(&self.sensors);
                prefetch_list(&self.provenance);
            }
            Stage::Behind => {
                let f = &*self.fused;
                for list in [
                    &f.dns.question.names,
                    &f.url.domains,
                    &f.tls.server_names,
                    &f.user.names,
                    &f.host.names,
                    &f.process.names,
                    &f.rule.names,
                    &f.event.actions,
                    &f.event.categories,
                ] {
                    // A single name is inline, in the fused block requested at the first stage.
                    if list.spilled() {
                        prefetch_list(list);
                    }
                }
                // Ids longer than a `Str` holds inline live in blocks of their own.
                for id in &self.event_ids {
                    prefetch(id.as_ptr());
                }
            }
        }
    }
}

/// Requests the first cache line of a list's elements (nothing for an empty list, whose pointer is
/// dangling: harmless, but a wasted request).
pub fn prefetch_list<T>(list: &[T]) {
    if !list.is_empty() {
        prefetch(list.as_ptr());
    }
}

/// Requests every cache line of `*p`, for a value (or a slice) larger than one line read from end to end.
pub fn prefetch_value<T: ?Sized>(p: &T) {
    let base = (p as *const T).cast::<u8>();
    for offset in (0..std::mem::size_of_val(p)).step_by(64) {
        prefetch(base.wrapping_add(offset));
    }
}

/// Asks the CPU to start loading the cache line at `p` into its caches, without waiting for it.
pub fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint to the cache: it reads and writes nothing the program sees and never
    // faults, whatever the address. SSE, which it needs, is part of every x86_64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoryId;

    #[test]
    fn every_story_is_visited_once_in_order() {
        let stories: Vec<Story> = (0..11u128)
            .map(|n| Story {
                story_id: StoryId(n),
                event_ids: vec![format!("an id longer than an inline string {n}").into()],
                ..Story::default()
            })
            .collect();
        let mut seen = Vec::new();
        for_each_prefetched(&stories, |s| seen.push(s.story_id.0));
        assert_eq!(seen, (0..11).collect::<Vec<_>>());
        for_each_prefetched(&[], |_| panic!("no story"));
    }
}
