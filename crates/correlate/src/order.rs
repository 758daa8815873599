//! The order story versions are handed out in.

use storyline_model::{Story, StoryId, Timestamp};

/// Orders stories by `(last_seen, story_id)`, ties kept in their order (as a stable sort would). It sorts
/// small keys and then moves each story into place once: a story is several hundred bytes, and a stable
/// sort of a catch-up's few hundred thousand moved them through every merge pass (a tenth of the time of
/// closing them).
pub(crate) fn sort_by_last_seen(stories: &mut [Story]) {
    let mut order: Vec<(Timestamp, StoryId, u32)> = stories
        .iter()
        .enumerate()
        .map(|(i, s)| (s.last_seen, s.story_id, i as u32))
        .collect();
    if order.is_sorted() {
        return;
    }
    order.sort_unstable();
    // Position `i` takes the story now at `order[i].2`: each cycle of that permutation is followed with
    // swaps, and every position is settled once.
    let mut settled = vec![false; stories.len()];
    for start in 0..stories.len() {
        if settled[start] {
            continue;
        }
        let mut at = start;
        loop {
            settled[at] = true;
            let from = order[at].2 as usize;
            if from == start {
                break;
            }
            stories.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn equals_a_stable_sort(keys in proptest::collection::vec((0i64..20, 0u64..5), 0..200)) {
            let stories: Vec<Story> = keys
                .iter()
                .enumerate()
                .map(|(i, (t, id))| Story {
                    last_seen: Timestamp(*t),
                    story_id: StoryId(*id as u128),
                    version: i as u32,
                    ..Story::default()
                })
                .collect();
            let mut expected = stories.clone();
            expected.sort_by_key(|s| (s.last_seen, s.story_id));
            let mut got = stories;
            sort_by_last_seen(&mut got);
            let versions = |s: &[Story]| s.iter().map(|s| s.version).collect::<Vec<_>>();
            prop_assert_eq!(versions(&got), versions(&expected));
        }
    }
}
