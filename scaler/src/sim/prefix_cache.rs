//! Per-replica prefix cache: an LRU of KV blocks keyed by the trace's prefix hash ids
//! (Mooncake: one id per 512-token block; equal ids mean an identical prefix up to and
//! including that block).
//!
//! Where to start: [`PrefixCache::lookup`] counts the leading blocks of a prompt already
//! cached (what vLLM's automatic prefix caching reuses: only a *prefix* hits), and
//! [`PrefixCache::insert`] records a prompt's blocks as most recently used.

use std::collections::{BTreeMap, HashMap};

/// LRU set of block ids with a fixed capacity in blocks.
#[derive(Debug, Clone, Default)]
pub struct PrefixCache {
    capacity_blocks: usize,
    /// Block id → its last-use stamp.
    stamp_of: HashMap<u64, u64>,
    /// Last-use stamp → block id (oldest first), for eviction.
    by_stamp: BTreeMap<u64, u64>,
    clock: u64,
}

impl PrefixCache {
    /// An empty cache holding at most `capacity_blocks` blocks (0 disables caching).
    #[must_use]
    pub fn new(capacity_blocks: usize) -> Self {
        Self {
            capacity_blocks,
            ..Self::default()
        }
    }

    /// Leading blocks of `hash_ids` present in the cache (stops at the first miss).
    #[must_use]
    pub fn lookup(&self, hash_ids: &[u64]) -> usize {
        hash_ids
            .iter()
            .take_while(|h| self.stamp_of.contains_key(h))
            .count()
    }

    /// Marks every block of `hash_ids` most recently used, evicting the least recently used
    /// blocks beyond capacity.
    pub fn insert(&mut self, hash_ids: &[u64]) {
        if self.capacity_blocks == 0 {
            return;
        }
        for &h in hash_ids {
            self.clock += 1;
            if let Some(old) = self.stamp_of.insert(h, self.clock) {
                self.by_stamp.remove(&old);
            }
            self.by_stamp.insert(self.clock, h);
        }
        while self.stamp_of.len() > self.capacity_blocks {
            let Some((_, h)) = self.by_stamp.pop_first() else {
                break;
            };
            self.stamp_of.remove(&h);
        }
    }

    /// Blocks held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.stamp_of.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.stamp_of.is_empty()
    }

    /// Forgets every block (an engine put to sleep drops its KV cache).
    pub fn clear(&mut self) {
        self.stamp_of.clear();
        self.by_stamp.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cached_prefix_hits() {
        let mut c = PrefixCache::new(10);
        c.insert(&[1, 2, 3]);
        assert_eq!(c.lookup(&[1, 2, 3, 4]), 3);
        assert_eq!(c.lookup(&[1, 9, 3]), 1, "a miss ends the prefix");
        assert_eq!(c.lookup(&[2, 3]), 2);
        assert_eq!(c.lookup(&[7]), 0);
    }

    #[test]
    fn least_recently_used_blocks_are_evicted_first() {
        let mut c = PrefixCache::new(3);
        c.insert(&[1, 2, 3]);
        c.insert(&[1]); // 1 is now the most recent; 2 the oldest
        c.insert(&[4]);
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup(&[2]), 0);
        assert_eq!(c.lookup(&[1]), 1);
        assert_eq!(c.lookup(&[3]), 1);
        assert_eq!(c.lookup(&[4]), 1);
        let mut off = PrefixCache::new(0);
        off.insert(&[1]);
        assert!(off.is_empty());
    }
}
