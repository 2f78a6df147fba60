//! What full snapshots see of the cache: the entries RocksDB lacks at the
//! synchronous phase, combined per key and in key order, merged into a RocksDB
//! snapshot's entries.

use super::layer::{Kind, Layer, STATE_LEN};
use super::writer::Run;
use crate::error::Result;
use crate::state::StateId;
use crate::store::rocks::RocksView;
use crate::store::{EntryVisitor, StoreView};
use std::sync::{Arc, OnceLock};

/// Entries handed to the writer and not (wholly) in a RocksDB snapshot, or not
/// handed over yet.
pub(super) enum Pending {
    Run {
        run: Arc<Run>,
        /// The run's records in key order and how many of them the snapshot
        /// holds, when it was being written.
        landed: Option<(Arc<[u32]>, usize)>,
    },
    /// The dirty entries of layers, oldest first.
    Layers(Vec<Arc<Layer>>),
}

/// A dirty entry of a view, the versions of its key combined.
pub(super) struct OverlayEntry {
    key: Vec<u8>,
    kind: Kind,
    payload: Vec<u8>,
}

/// Combines, per key and sorted by key, what `pending` holds (oldest first): what
/// lies on top of RocksDB.
pub(super) fn build_overlay(pending: &[Pending]) -> Vec<OverlayEntry> {
    let mut items: Vec<(&[u8], Kind, &[u8])> = Vec::new();
    for p in pending {
        match p {
            Pending::Run {
                run,
                landed: Some((order, landed)),
            } => items.extend(order[*landed..].iter().map(|&i| run.get(i as usize))),
            Pending::Run { run, landed: None } => items.extend((0..run.len()).map(|i| run.get(i))),
            Pending::Layers(layers) => {
                for layer in layers {
                    items.extend(
                        layer
                            .dirty_entries()
                            .map(|e| (e.key(), e.kind, e.payload())),
                    );
                }
            }
        }
    }
    // A stable sort: a key's versions stay oldest first.
    items.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<OverlayEntry> = Vec::with_capacity(items.len());
    for (key, kind, payload) in items {
        match out.last_mut() {
            Some(last) if last.key == key => match (last.kind, kind) {
                (_, Kind::Present | Kind::Absent) | (Kind::Absent, Kind::Append) => {
                    last.kind = if kind == Kind::Absent {
                        Kind::Absent
                    } else {
                        Kind::Present
                    };
                    last.payload.clear();
                    last.payload.extend_from_slice(payload);
                }
                (Kind::Present | Kind::Append, Kind::Append) => {
                    last.payload.extend_from_slice(payload);
                }
            },
            _ => out.push(OverlayEntry {
                key: key.to_vec(),
                kind,
                payload: payload.to_vec(),
            }),
        }
    }
    out
}

/// A RocksDB snapshot plus what the cache held beyond it.
pub(super) struct CachedView {
    pub rocks: RocksView,
    pub pending: Vec<Pending>,
    /// The pending entries combined, sorted by key; built on first use, on the
    /// snapshot's thread.
    pub overlay: OnceLock<Vec<OverlayEntry>>,
}

impl CachedView {
    /// Visits what an overlay entry leaves of a key whose snapshot value is `base`.
    fn emit(
        &self,
        s: StateId,
        o: &OverlayEntry,
        base: Option<&[u8]>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        let k = &o.key[STATE_LEN..];
        match (o.kind, base) {
            (Kind::Absent, _) => Ok(()),
            (Kind::Present, _) | (Kind::Append, None) => f(self.rocks.entry(s, k, &o.payload)?),
            (Kind::Append, Some(base)) => {
                let list = [base, &o.payload].concat();
                f(self.rocks.entry(s, k, &list)?)
            }
        }
    }
}

impl StoreView for CachedView {
    fn for_each_in_key_group(
        &self,
        kg: u32,
        only: Option<StateId>,
        f: &mut EntryVisitor<'_>,
    ) -> Result<()> {
        if !self.rocks.covers(kg) {
            return Ok(());
        }
        let overlay = self.overlay.get_or_init(|| build_overlay(&self.pending));
        for s in 0..self.rocks.num_states() as StateId {
            if only.is_some_and(|o| o != s) {
                continue;
            }
            let mut prefix = [0u8; STATE_LEN + 2];
            prefix[..STATE_LEN].copy_from_slice(&s.to_be_bytes());
            prefix[STATE_LEN..].copy_from_slice(&(kg as u16).to_be_bytes());
            let lo = overlay.partition_point(|o| o.key[..prefix.len()] < prefix[..]);
            let hi = overlay.partition_point(|o| o.key[..prefix.len()] <= prefix[..]);
            let mine = &overlay[lo..hi];
            // A merge of two key-ordered sequences; the overlay wins on equal keys.
            let mut i = 0;
            self.rocks.for_each_raw(kg, s, &mut |k, v| {
                while let Some(o) = mine.get(i).filter(|o| &o.key[STATE_LEN..] < k) {
                    self.emit(s, o, None, f)?;
                    i += 1;
                }
                match mine.get(i).filter(|o| &o.key[STATE_LEN..] == k) {
                    Some(o) => {
                        i += 1;
                        self.emit(s, o, Some(v), f)
                    }
                    None => f(self.rocks.entry(s, k, v)?),
                }
            })?;
            for o in &mine[i..] {
                self.emit(s, o, None, f)?;
            }
        }
        Ok(())
    }
}
