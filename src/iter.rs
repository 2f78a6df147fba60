//! Iterators over a point-in-time view of a store, filled one key group at a time
//! so memory stays bounded by the largest key group.

use crate::codec::ListElements;
use crate::error::Result;
use crate::keygroup::KeyGroupRange;
use crate::state::StateId;
use crate::store::{EntryData, StoreView};
use std::borrow::Cow;
use std::collections::VecDeque;

/// A (key group, key, namespace) of one state.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyEntry {
    pub key_group: u32,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
}

/// One entry of the whole backend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub key_group: u32,
    pub state: StateId,
    pub key: Vec<u8>,
    pub namespace: Vec<u8>,
    pub value: EntryValue,
}

/// An entry's payload; a map state yields one entry per user key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryValue {
    Value(Vec<u8>),
    List(Vec<Vec<u8>>),
    MapEntry { user_key: Vec<u8>, value: Vec<u8> },
}

impl Entry {
    /// The (user key, value) Flink's canonical savepoints hold for this entry: a
    /// map entry's user key (empty for other kinds) and the value, a list in Flink's
    /// delimited encoding (`ListDelimitedSerializer`: the serialized elements joined
    /// by one `,` byte). None for an empty list, which canonical savepoints leave out.
    pub fn canonical(&self) -> Option<(&[u8], Cow<'_, [u8]>)> {
        match &self.value {
            EntryValue::Value(v) => Some((&[], Cow::Borrowed(&v[..]))),
            EntryValue::List(l) if l.is_empty() => None,
            EntryValue::List(l) => Some((&[], Cow::Owned(delimited_list(l)))),
            EntryValue::MapEntry { user_key, value } => {
                Some((&user_key[..], Cow::Borrowed(&value[..])))
            }
        }
    }
}

/// Flink's list encoding in canonical savepoints: elements joined by `,`.
fn delimited_list(elements: &[Vec<u8>]) -> Vec<u8> {
    let len = elements.iter().map(|e| e.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    for (i, e) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out
}

/// The entries of one map sorted by user key, in memory reused from one map to the
/// next ([`crate::StateBackend::map_entries_sorted`]).
#[derive(Default, Debug)]
pub struct SortedMap {
    bytes: Vec<u8>,
    /// `(start, user key end, value end)` of each entry in `bytes`.
    spans: Vec<(usize, usize, usize)>,
}

impl SortedMap {
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
    }

    pub(crate) fn push(&mut self, user_key: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(user_key);
        let user_key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.spans.push((start, user_key_end, self.bytes.len()));
    }

    pub(crate) fn sort(&mut self) {
        let bytes = &self.bytes;
        // User keys are unique within a map: the order is total.
        self.spans
            .sort_unstable_by(|a, b| bytes[a.0..a.1].cmp(&bytes[b.0..b.1]));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of all user keys and values together.
    pub fn content_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// (user key, value) pairs in user-key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.spans
            .iter()
            .map(|&(start, uk_end, end)| (&self.bytes[start..uk_end], &self.bytes[uk_end..end]))
    }
}

/// Walks key groups of a view, buffering one key group's items at a time.
struct KeyGroupWalk {
    view: Box<dyn StoreView>,
    next_kg: Option<u32>,
    end: u32,
}

impl KeyGroupWalk {
    fn new(view: Box<dyn StoreView>, range: KeyGroupRange) -> Self {
        KeyGroupWalk {
            view,
            next_kg: Some(range.start()),
            end: range.end(),
        }
    }

    /// Advances to the next key group; None when done.
    fn advance(&mut self) -> Option<u32> {
        let kg = self.next_kg?;
        self.next_kg = (kg < self.end).then_some(kg + 1);
        Some(kg)
    }
}

/// Keys (and namespaces) of one state; see [`crate::StateBackend::keys`].
pub struct KeysIter {
    walk: KeyGroupWalk,
    state: StateId,
    namespace: Option<Vec<u8>>,
    buf: VecDeque<KeyEntry>,
}

impl KeysIter {
    pub(crate) fn new(
        view: Box<dyn StoreView>,
        range: KeyGroupRange,
        state: StateId,
        namespace: Option<Vec<u8>>,
    ) -> Self {
        KeysIter {
            walk: KeyGroupWalk::new(view, range),
            state,
            namespace,
            buf: VecDeque::new(),
        }
    }
}

impl Iterator for KeysIter {
    type Item = Result<KeyEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buf.is_empty() {
            let kg = self.walk.advance()?;
            let (buf, ns) = (&mut self.buf, &self.namespace);
            let r = self
                .walk
                .view
                .for_each_in_key_group(kg, Some(self.state), &mut |e| {
                    if ns.as_deref().is_some_and(|n| n != e.namespace) {
                        return Ok(());
                    }
                    // A map yields its (key, namespace) once per user key, consecutively.
                    if buf
                        .back()
                        .is_some_and(|b| b.key == e.key && b.namespace == e.namespace)
                    {
                        return Ok(());
                    }
                    buf.push_back(KeyEntry {
                        key_group: kg,
                        key: e.key.to_vec(),
                        namespace: e.namespace.to_vec(),
                    });
                    Ok(())
                });
            if let Err(e) = r {
                self.walk.next_kg = None;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// Every entry of a backend; see [`crate::StateBackend::entries`].
pub struct EntriesIter {
    walk: KeyGroupWalk,
    only: Option<StateId>,
    buf: VecDeque<Entry>,
}

impl EntriesIter {
    /// Entries of every state, or with `only` set, of that state alone.
    pub(crate) fn new(
        view: Box<dyn StoreView>,
        range: KeyGroupRange,
        only: Option<StateId>,
    ) -> Self {
        EntriesIter {
            walk: KeyGroupWalk::new(view, range),
            only,
            buf: VecDeque::new(),
        }
    }
}

impl Iterator for EntriesIter {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.buf.is_empty() {
            let kg = self.walk.advance()?;
            let buf = &mut self.buf;
            let r = self
                .walk
                .view
                .for_each_in_key_group(kg, self.only, &mut |e| {
                    buf.push_back(Entry {
                        key_group: kg,
                        state: e.state,
                        key: e.key.to_vec(),
                        namespace: e.namespace.to_vec(),
                        value: match e.data {
                            EntryData::Value(v) => EntryValue::Value(v.to_vec()),
                            EntryData::List(l) => {
                                EntryValue::List(ListElements::new(l).map(<[u8]>::to_vec).collect())
                            }
                            EntryData::MapEntry { user_key, value } => EntryValue::MapEntry {
                                user_key: user_key.to_vec(),
                                value: value.to_vec(),
                            },
                        },
                    });
                    Ok(())
                });
            if let Err(e) = r {
                self.walk.next_kg = None;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
