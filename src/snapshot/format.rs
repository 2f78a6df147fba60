//! Byte-level constants and record encoding of the snapshot format.
//! docs/snapshot-format.md is the specification; keep the two in step.

use crate::codec::put_varint;
use crate::store::{EntryData, EntryRef};

/// First 8 bytes of a keyed-state data stream.
pub const DATA_MAGIC: [u8; 8] = *b"STBKDATA";
/// First 8 bytes of a manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"STBKMANI";
/// The format version this library writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Data header: magic, version (u32 LE), CRC32C of the previous 12 bytes (u32 LE).
pub const DATA_HEADER_LEN: usize = 16;
/// Manifest header: magic, version, body length, CRC32C of the body (u32 LE each).
pub const MANIFEST_HEADER_LEN: usize = 20;
/// Block header: payload length, CRC32C of the payload (u32 LE each).
pub const BLOCK_HEADER_LEN: usize = 8;
/// A block is closed once its payload reaches this size.
pub const BLOCK_TARGET_LEN: usize = 64 * 1024;
/// Upper bound on a block payload (a single record may exceed the target).
pub const MAX_BLOCK_LEN: u64 = u32::MAX as u64;
/// Upper bound on a manifest body; anything larger is treated as corruption.
pub const MAX_MANIFEST_LEN: u64 = 1 << 31;

/// Last 8 bytes of a single-stream snapshot.
pub const TRAILER_MAGIC: [u8; 8] = *b"STBKTAIL";
/// Trailer of a single-stream snapshot: offset of the manifest (u64 LE), magic.
pub const TRAILER_LEN: usize = 16;

/// Record tags.
pub const TAG_VALUE: u8 = 1;
pub const TAG_LIST: u8 = 2;
pub const TAG_MAP_ENTRY: u8 = 3;

/// The data header bytes.
pub fn data_header() -> [u8; DATA_HEADER_LEN] {
    let mut h = [0u8; DATA_HEADER_LEN];
    h[..8].copy_from_slice(&DATA_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends one record to a block payload.
pub fn encode_record(out: &mut Vec<u8>, e: &EntryRef<'_>) {
    let tag = match e.data {
        EntryData::Value(_) => TAG_VALUE,
        EntryData::List(_) => TAG_LIST,
        EntryData::MapEntry { .. } => TAG_MAP_ENTRY,
    };
    out.push(tag);
    put_varint(out, e.state as u64);
    put_bytes(out, e.key);
    put_bytes(out, e.namespace);
    match e.data {
        EntryData::Value(v) | EntryData::List(v) => put_bytes(out, v),
        EntryData::MapEntry { user_key, value } => {
            put_bytes(out, user_key);
            put_bytes(out, value);
        }
    }
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}
