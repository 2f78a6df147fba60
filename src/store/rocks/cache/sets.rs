//! Sorted sets (timers) in the write-back cache: the mutations RocksDB may not hold
//! yet, in key order.
//!
//! Why: a set's elements are written as dirty entries like any other, so runs,
//! snapshot views and checkpoint links carry them in order with the rest of the
//! state; but reading a set is a range scan, which the hash table cannot answer.
//! So each element added or removed is also recorded here, by key, until the job
//! that carries it to RocksDB has completed; a range read merges these over what
//! RocksDB holds, which is every earlier mutation.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// What a recorded element costs besides its key: the tree's node share and the
/// value.
const OVERHEAD: usize = 48;

#[derive(Default)]
pub(super) struct SetOverlay {
    /// Cache key (`state ‖ DB key`) → (present, sequence number of its last change).
    entries: BTreeMap<Vec<u8>, (bool, u64)>,
    /// The last sequence number given.
    seq: u64,
    /// (job, seq): once `job` has completed, every change up to `seq` is RocksDB's.
    handed: VecDeque<(u64, u64)>,
    handed_seq: u64,
    bytes: usize,
}

impl SetOverlay {
    /// Records that `key` was added (present) or removed.
    pub fn record(&mut self, key: &[u8], present: bool) {
        self.seq += 1;
        match self.entries.get_mut(key) {
            Some(e) => *e = (present, self.seq),
            None => {
                self.bytes += key.len() + OVERHEAD;
                self.entries.insert(key.to_vec(), (present, self.seq));
            }
        }
    }

    /// Every change recorded so far goes to RocksDB with job `job` (the cache has just
    /// handed all its dirty entries to it).
    pub fn handed_to(&mut self, job: u64) {
        if self.seq > self.handed_seq {
            self.handed.push_back((job, self.seq));
            self.handed_seq = self.seq;
        }
    }

    /// Jobs up to `done` have completed: forgets the changes they carried, unless
    /// changed again since.
    pub fn landed(&mut self, done: u64) {
        let mut upto = 0;
        while let Some(&(job, seq)) = self.handed.front() {
            if job > done {
                break;
            }
            upto = seq;
            self.handed.pop_front();
        }
        if upto > 0 {
            let mut freed = 0;
            self.entries.retain(|k, (_, seq)| {
                let keep = *seq > upto;
                if !keep {
                    freed += k.len() + OVERHEAD;
                }
                keep
            });
            self.bytes -= freed;
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The recorded changes of keys that start with `prefix`, above `after` (a key
    /// with that prefix; None: from the first), in key order: (key, present).
    pub fn range<'a>(
        &'a self,
        prefix: &'a [u8],
        after: Option<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a [u8], bool)> + 'a {
        let from = after.map_or(Bound::Included(prefix), Bound::Excluded);
        self.entries
            .range::<[u8], _>((from, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, &(present, _))| (k.as_slice(), present))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_forgotten_once_their_job_has_landed() {
        let mut o = SetOverlay::default();
        o.record(b"a1", true);
        o.record(b"a2", true);
        o.handed_to(7);
        o.record(b"a1", false);
        o.record(b"b1", true);
        o.landed(6);
        assert_eq!(o.range(b"a", None).count(), 2);
        o.landed(7);
        // a1 changed after job 7 took it: still recorded, as removed.
        let a: Vec<_> = o.range(b"a", None).collect();
        assert_eq!(a, vec![(&b"a1"[..], false)]);
        let b: Vec<_> = o.range(b"b", Some(&b"b1"[..])).collect();
        assert!(b.is_empty());
        o.handed_to(8);
        o.landed(8);
        assert_eq!(o.bytes(), 0);
        assert_eq!(o.range(b"", None).count(), 0);
    }
}
