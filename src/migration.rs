//! State migration (schema evolution): every entry of one state rewritten by a
//! caller's function, as Flink's backends do when a restored state's new serializer
//! can read the old bytes only after migration (a POJO that gained a field, an Avro
//! schema that evolved). The core walks a point-in-time view of the state and writes
//! the new bytes into the live store; the function (through the JNI bridge, Flink's
//! old and new serializers) maps old bytes to new ones, a batch at a time so that a
//! bridge crosses into its runtime once per batch, not once per entry.

use crate::codec;
use crate::error::{Error, Result};
use crate::iter::{EntriesIter, EntryValue};
use crate::keygroup::KeyGroupRange;
use crate::state::{StateId, StateKind};
use crate::store::KeyedStore;

/// One entry of a state under migration, as the migration function sees it and
/// leaves it: a map entry's user key (empty for values and lists) and the value (a
/// list's elements in the list encoding of [`crate::codec`], a map value as stored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationEntry {
    pub user_key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Rewrites a batch of entries in place.
pub type MigrateFn<'a> = dyn FnMut(&mut [MigrationEntry]) -> Result<()> + 'a;

/// At most this many entries, or about this many bytes, go to the function at once.
const BATCH_ENTRIES: usize = 4096;
const BATCH_BYTES: usize = 4 << 20;

/// What a migration did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MigrationStats {
    /// Entries rewritten: values, lists, map entries.
    pub entries: u64,
    /// Bytes of the old entries (user keys and values).
    pub bytes_read: u64,
    /// Bytes of the new entries.
    pub bytes_written: u64,
}

/// Migrates state `s` of kind `kind` in `store`, reading `entries` (a view of that
/// state taken before any write). With `user_keys_change` (a map whose user-key
/// serializer changes), each (key, namespace) map is cleared before its first new
/// entry is written, so no old user key survives; a view yields a map's entries
/// consecutively, which makes that safe. Without it, a changed user key is an error.
pub(crate) fn migrate(
    store: &mut dyn KeyedStore,
    s: StateId,
    kind: StateKind,
    entries: EntriesIter,
    user_keys_change: bool,
    f: &mut MigrateFn<'_>,
) -> Result<MigrationStats> {
    let mut stats = MigrationStats::default();
    let mut entries = entries.peekable();
    // (key group, key, namespace) of each entry of the batch.
    let mut places: Vec<(u32, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut batch: Vec<MigrationEntry> = Vec::new();
    let mut cleared: Option<(u32, Vec<u8>, Vec<u8>)> = None;
    loop {
        places.clear();
        batch.clear();
        let mut bytes = 0usize;
        while batch.len() < BATCH_ENTRIES && bytes < BATCH_BYTES {
            let Some(entry) = entries.next() else { break };
            let entry = entry?;
            let (user_key, value) = match entry.value {
                EntryValue::Value(v) => (Vec::new(), v),
                EntryValue::List(elements) => {
                    let mut encoded = Vec::new();
                    for e in &elements {
                        codec::put_list_element(&mut encoded, e);
                    }
                    (Vec::new(), encoded)
                }
                EntryValue::MapEntry { user_key, value } => (user_key, value),
            };
            bytes += user_key.len() + value.len();
            places.push((entry.key_group, entry.key, entry.namespace));
            batch.push(MigrationEntry { user_key, value });
        }
        if batch.is_empty() {
            return Ok(stats);
        }
        stats.bytes_read += bytes as u64;
        let old_user_keys: Vec<Vec<u8>> = if kind == StateKind::Map && !user_keys_change {
            batch.iter().map(|e| e.user_key.clone()).collect()
        } else {
            Vec::new()
        };
        f(&mut batch)?;
        for (i, ((kg, key, ns), e)) in places.iter().zip(&batch).enumerate() {
            stats.entries += 1;
            stats.bytes_written += (e.user_key.len() + e.value.len()) as u64;
            match kind {
                StateKind::Value => store.value_put(s, *kg, key, ns, &e.value)?,
                StateKind::List => {
                    if codec::validate_list(&e.value).is_none() {
                        return Err(Error::invalid(
                            "a state migration returned a malformed list encoding",
                        ));
                    }
                    if e.value.is_empty() {
                        store.clear(s, *kg, key, ns)?;
                    } else {
                        store.list_replace(s, *kg, key, ns, &e.value)?;
                    }
                }
                StateKind::SortedSet => {
                    return Err(Error::invalid(
                        "sorted set states (timers) are not migrated: their elements are \
                         ordered by their serialized bytes",
                    ))
                }
                StateKind::Map => {
                    if user_keys_change {
                        let group = (*kg, key.clone(), ns.clone());
                        if cleared.as_ref() != Some(&group) {
                            store.clear(s, *kg, key, ns)?;
                            cleared = Some(group);
                        }
                    } else if old_user_keys[i] != e.user_key {
                        return Err(Error::invalid(
                            "a state migration changed a map's user key, but the migration \
                             keeps user keys",
                        ));
                    }
                    store.map_put(s, *kg, key, ns, &e.user_key, &e.value)?;
                }
            }
        }
    }
}

/// The entries of state `s` over `range` in a view of `store`.
pub(crate) fn entries_of(
    store: &dyn KeyedStore,
    range: KeyGroupRange,
    s: StateId,
) -> Result<EntriesIter> {
    Ok(EntriesIter::new(store.view()?, range, Some(s)))
}
