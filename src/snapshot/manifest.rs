//! The manifest: the small, checksummed description of one snapshot. A checkpoint
//! exists once its manifest is durably written; it names the data, its size and
//! CRC32C, the key-group range and each key group's offset.

use super::format::{FORMAT_VERSION, MANIFEST_HEADER_LEN, MANIFEST_MAGIC, MAX_MANIFEST_LEN};
use crate::config::BackendKind;
use crate::error::{Error, Result};
use crate::keygroup::KeyGroupRange;
use crate::operator::OperatorListSnapshot;
use crate::state::StateInfo;
use serde::{Deserialize, Serialize};

/// Everything needed to restore one snapshot. Serialized with postcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub checkpoint_id: u64,
    /// The backend that wrote it (any backend restores any other's full snapshot).
    pub backend: BackendKind,
    pub max_parallelism: u32,
    pub key_group_range: KeyGroupRange,
    /// Registered states; records refer to them by id.
    pub states: Vec<StateInfo>,
    pub keyed: KeyedData,
    /// Operator (non-keyed) list states.
    pub operator_states: Vec<OperatorListSnapshot>,
}

/// Where the keyed-state data stream is, and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyedData {
    pub location: DataLocation,
    /// Length of the data stream in bytes.
    pub size: u64,
    /// CRC32C of the whole data stream.
    pub crc32c: u32,
    /// (key group, offset of its first block), ascending; key groups without data are absent.
    pub key_group_offsets: Vec<(u32, u64)>,
    /// (state id, bytes of its records), for size limits and statistics.
    pub state_sizes: Vec<(u32, u64)>,
}

/// Where the data stream of a manifest is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataLocation {
    /// Right after the manifest, in the same byte string (memory backend).
    Inline,
    /// A file in the same directory as the manifest.
    File(String),
}

impl Manifest {
    /// The framed manifest: header (magic, version, length, CRC32C) then the body.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let body = postcard::to_stdvec(self)
            .map_err(|e| Error::invalid(format!("manifest does not serialize: {e}")))?;
        let mut out = Vec::with_capacity(MANIFEST_HEADER_LEN + body.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Parses a framed manifest at the start of `bytes`; returns it and its framed length.
    /// `file` names the source in errors.
    pub fn decode(bytes: &[u8], file: &str) -> Result<(Manifest, usize)> {
        if bytes.len() < MANIFEST_HEADER_LEN {
            return Err(Error::corrupted(
                file,
                bytes.len() as u64,
                format!(
                    "truncated manifest header: {} of {MANIFEST_HEADER_LEN} bytes",
                    bytes.len()
                ),
            ));
        }
        if bytes[..8] != MANIFEST_MAGIC {
            return Err(Error::corrupted(
                file,
                0,
                "not a libstatebackend manifest (bad magic)",
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(Error::corrupted(
                file,
                8,
                format!(
                    "unsupported format version {version} (this library reads {FORMAT_VERSION})"
                ),
            ));
        }
        let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as u64;
        let crc = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        if len > MAX_MANIFEST_LEN || MANIFEST_HEADER_LEN as u64 + len > bytes.len() as u64 {
            return Err(Error::corrupted(
                file,
                12,
                format!(
                    "manifest body of {len} bytes does not fit the {} bytes available",
                    bytes.len() - MANIFEST_HEADER_LEN
                ),
            ));
        }
        let body = &bytes[MANIFEST_HEADER_LEN..MANIFEST_HEADER_LEN + len as usize];
        let actual = crc32c::crc32c(body);
        if actual != crc {
            return Err(Error::corrupted(
                file,
                MANIFEST_HEADER_LEN as u64,
                format!("manifest checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"),
            ));
        }
        let (manifest, rest): (Manifest, &[u8]) = postcard::take_from_bytes(body).map_err(|e| {
            Error::corrupted(
                file,
                MANIFEST_HEADER_LEN as u64,
                format!("manifest body: {e}"),
            )
        })?;
        if !rest.is_empty() {
            return Err(Error::corrupted(
                file,
                (MANIFEST_HEADER_LEN + body.len() - rest.len()) as u64,
                "trailing bytes in manifest body",
            ));
        }
        manifest.check(file)?;
        Ok((manifest, MANIFEST_HEADER_LEN + len as usize))
    }

    /// Internal consistency, so later code can index without panicking.
    fn check(&self, file: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::corrupted(file, MANIFEST_HEADER_LEN as u64, reason));
        crate::keygroup::check_max_parallelism(self.max_parallelism)
            .or_else(|e| bad(e.to_string()))?;
        if self.key_group_range.end() >= self.max_parallelism {
            return bad(format!(
                "key-group range {} exceeds max parallelism {}",
                self.key_group_range, self.max_parallelism
            ));
        }
        for (i, s) in self.states.iter().enumerate() {
            if s.id as usize != i {
                return bad(format!(
                    "state '{}' has id {} at position {i}",
                    s.name, s.id
                ));
            }
        }
        let mut last: Option<(u32, u64)> = None;
        for &(kg, off) in &self.keyed.key_group_offsets {
            if !self.key_group_range.contains(kg) || off >= self.keyed.size {
                return bad(format!("key group {kg} at offset {off} is out of bounds"));
            }
            if let Some((lkg, loff)) = last {
                if kg <= lkg || off <= loff {
                    return bad("key-group offsets are not ascending".into());
                }
            }
            last = Some((kg, off));
        }
        Ok(())
    }
}
