//! The asynchronous snapshot phase: encodes a store view into the checksummed,
//! key-group-ordered data stream (docs/snapshot-format.md).

use super::format::{self, BLOCK_HEADER_LEN, BLOCK_TARGET_LEN, MAX_BLOCK_LEN};
use super::manifest::{DataLocation, FullData};
use crate::codec::{put_list_element, ListElements};
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::state::StateInfo;
use crate::store::{EntryData, EntryRef, StoreView};
use std::io::Write;

/// Drops or rewrites values while a full snapshot is written: Flink's snapshot
/// transformers (state TTL's `cleanupFullSnapshot` drops expired values). Applied to
/// value-state values, to each list element and to each map value; a list whose
/// elements are all dropped is left out, as Flink's backends do. The live state is
/// not changed.
pub trait SnapshotFilter {
    /// Whether values of `state` go through [`SnapshotFilter::filter`]; the others
    /// are written as they are, without a call.
    fn filters(&self, state: u32) -> bool;
    /// The value to write instead of `value`, or `None` to leave it out.
    fn filter(&mut self, state: u32, value: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// No filtering: every value is written as it is.
pub struct NoFilter;

impl SnapshotFilter for NoFilter {
    fn filters(&self, _state: u32) -> bool {
        false
    }

    fn filter(&mut self, _state: u32, value: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(Some(value.to_vec()))
    }
}

/// `entry` through `filter`: `None` if it is left out, else its new payload.
fn filtered(
    filter: &mut dyn SnapshotFilter,
    entry: &EntryRef<'_>,
    scratch: &mut Vec<u8>,
) -> Result<Option<FilteredData>> {
    let state = entry.state;
    Ok(match entry.data {
        EntryData::Value(value) => filter.filter(state, value)?.map(FilteredData::Value),
        EntryData::MapEntry { value, .. } => filter.filter(state, value)?.map(FilteredData::Value),
        EntryData::List(encoded) => {
            scratch.clear();
            for element in ListElements::new(encoded) {
                if let Some(kept) = filter.filter(state, element)? {
                    put_list_element(scratch, &kept);
                }
            }
            (!scratch.is_empty()).then(|| FilteredData::List(std::mem::take(scratch)))
        }
    })
}

enum FilteredData {
    Value(Vec<u8>),
    List(Vec<u8>),
}

/// A per-state size limit (memory backend), checked while writing.
#[derive(Clone, Copy, Debug)]
pub struct SizeLimit {
    pub checkpoint_id: u64,
    pub max_state_size: u64,
}

/// Writes blocks to a sink, tracking offsets, the running CRC32C and per-state sizes.
struct DataWriter<'w> {
    sink: &'w mut dyn Write,
    sink_name: &'w str,
    offset: u64,
    crc: u32,
    payload: Vec<u8>,
    block_kg: Option<u32>,
    offsets: Vec<(u32, u64)>,
    state_sizes: Vec<u64>,
}

impl<'w> DataWriter<'w> {
    fn new(sink: &'w mut dyn Write, sink_name: &'w str, num_states: usize) -> Result<Self> {
        let mut w = DataWriter {
            sink,
            sink_name,
            offset: 0,
            crc: 0,
            payload: Vec::with_capacity(BLOCK_TARGET_LEN + 1024),
            block_kg: None,
            offsets: Vec::new(),
            state_sizes: vec![0; num_states],
        };
        w.emit(&format::data_header())?;
        Ok(w)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.sink
            .write_all(bytes)
            .map_err(|e| Error::io(self.sink_name, e))?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.payload.len() <= 4 {
            self.payload.clear();
            return Ok(());
        }
        if self.payload.len() as u64 > MAX_BLOCK_LEN {
            return Err(Error::invalid(format!(
                "an entry of {} bytes is too large for a snapshot block (max {MAX_BLOCK_LEN})",
                self.payload.len()
            )));
        }
        let mut header = [0u8; BLOCK_HEADER_LEN];
        header[..4].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&crc32c::crc32c(&self.payload).to_le_bytes());
        let payload = std::mem::take(&mut self.payload);
        self.emit(&header)?;
        self.emit(&payload)?;
        self.payload = payload;
        self.payload.clear();
        Ok(())
    }

    fn write(&mut self, kg: u32, entry: &EntryRef<'_>) -> Result<u64> {
        if self.block_kg != Some(kg) {
            self.flush_block()?;
            self.block_kg = Some(kg);
            self.offsets.push((kg, self.offset));
        }
        if self.payload.is_empty() {
            self.payload.extend_from_slice(&kg.to_le_bytes());
        }
        let before = self.payload.len();
        format::encode_record(&mut self.payload, entry);
        let size = (self.payload.len() - before) as u64;
        self.state_sizes[entry.state as usize] += size;
        if self.payload.len() >= BLOCK_TARGET_LEN {
            self.flush_block()?;
        }
        Ok(self.state_sizes[entry.state as usize])
    }

    fn finish(mut self, location: DataLocation) -> Result<FullData> {
        self.flush_block()?;
        self.sink
            .flush()
            .map_err(|e| Error::io(self.sink_name, e))?;
        Ok(FullData {
            location,
            size: self.offset,
            crc32c: self.crc,
            key_group_offsets: self.offsets,
            state_sizes: self
                .state_sizes
                .iter()
                .enumerate()
                .filter(|(_, &s)| s > 0)
                .map(|(i, &s)| (i as u32, s))
                .collect(),
        })
    }
}

/// Writes every entry of `view` in `range`, key group by key group, to `sink`,
/// through `filter`.
#[allow(clippy::too_many_arguments)]
pub fn write_data(
    view: &dyn StoreView,
    range: KeyGroupRange,
    states: &[StateInfo],
    limit: Option<SizeLimit>,
    sink: &mut dyn Write,
    sink_name: &str,
    location: DataLocation,
    filter: &mut dyn SnapshotFilter,
) -> Result<FullData> {
    let mut w = DataWriter::new(sink, sink_name, states.len())?;
    let mut scratch = Vec::new();
    for kg in range.iter() {
        view.for_each_in_key_group(kg, None, &mut |entry| {
            let state_size = if filter.filters(entry.state) {
                match filtered(filter, &entry, &mut scratch)? {
                    None => return Ok(()),
                    Some(FilteredData::Value(value)) => {
                        let data = match entry.data {
                            EntryData::MapEntry { user_key, .. } => EntryData::MapEntry {
                                user_key,
                                value: &value,
                            },
                            _ => EntryData::Value(&value),
                        };
                        w.write(kg, &EntryRef { data, ..entry })?
                    }
                    Some(FilteredData::List(list)) => {
                        let size = w.write(
                            kg,
                            &EntryRef {
                                data: EntryData::List(&list),
                                ..entry
                            },
                        )?;
                        scratch = list;
                        size
                    }
                }
            } else {
                w.write(kg, &entry)?
            };
            match limit {
                Some(l) if state_size > l.max_state_size => Err(Error::StateTooLarge {
                    checkpoint_id: l.checkpoint_id,
                    state: states[entry.state as usize].name.clone(),
                    size: state_size,
                    limit: l.max_state_size,
                }),
                _ => Ok(()),
            }
        })?;
    }
    w.finish(location)
}
