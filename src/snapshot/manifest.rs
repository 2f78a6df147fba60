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

/// The keyed state of a snapshot: a data stream (full) or RocksDB files (incremental).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyedData {
    Full(FullData),
    Files(DbFiles),
}

/// Where the keyed-state data stream of a full snapshot is, and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullData {
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

/// Where the data stream of a full snapshot is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataLocation {
    /// Right after the manifest, in the same byte string (memory backend).
    Inline,
    /// A file in the same directory as the manifest.
    File(String),
    /// At the start of the same stream, before the manifest (single-stream snapshot).
    Stream,
}

/// The files of a RocksDB checkpoint. Column family `state-<i>` holds state `i`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFiles {
    pub files: Vec<DbFile>,
    /// Bytes this checkpoint uploaded; the rest was shared with earlier checkpoints.
    pub uploaded_bytes: u64,
}

/// One file of a RocksDB checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFile {
    /// Its name in the RocksDB directory (`000012.sst`, `MANIFEST-000005`, ...).
    pub name: String,
    pub location: FileLocation,
    pub size: u64,
    /// CRC32C of each `CHUNK_LEN` chunk of the file, in order.
    pub chunk_crcs: Vec<u32>,
}

/// Where a RocksDB file of a checkpoint is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileLocation {
    /// `<checkpoint root>/shared/<name>`, shared by the checkpoints that need it.
    Shared(String),
    /// `<checkpoint dir>/<name>`, beside the manifest, owned by this checkpoint.
    Private(String),
}

/// Chunk length of the per-file checksums of RocksDB files: 1 MiB.
pub const CHUNK_LEN: u64 = 1 << 20;

impl FullData {
    fn check(&self, range: &KeyGroupRange, bad: &dyn Fn(String) -> Error) -> Result<()> {
        let mut last: Option<(u32, u64)> = None;
        for &(kg, off) in &self.key_group_offsets {
            if !range.contains(kg) || off >= self.size {
                return Err(bad(format!(
                    "key group {kg} at offset {off} is out of bounds"
                )));
            }
            if let Some((lkg, loff)) = last {
                if kg <= lkg || off <= loff {
                    return Err(bad("key-group offsets are not ascending".into()));
                }
            }
            last = Some((kg, off));
        }
        Ok(())
    }
}

impl DbFiles {
    fn check(&self, bad: &dyn Fn(String) -> Error) -> Result<()> {
        for f in &self.files {
            let remote = match &f.location {
                FileLocation::Shared(n) | FileLocation::Private(n) => n,
            };
            let clean = |n: &str| {
                !n.is_empty() && !n.split('/').any(|p| p.is_empty() || p == "." || p == "..")
            };
            if !clean(&f.name) || f.name.contains('/') || !clean(remote) {
                return Err(bad(format!("bad file name '{}' -> '{remote}'", f.name)));
            }
            if f.chunk_crcs.len() as u64 != f.size.div_ceil(CHUNK_LEN) {
                return Err(bad(format!(
                    "file {} has {} checksums for {} bytes",
                    f.name,
                    f.chunk_crcs.len(),
                    f.size
                )));
            }
        }
        Ok(())
    }

    /// Total size of the checkpoint's files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
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
        let bad = |reason: String| Error::corrupted(file, MANIFEST_HEADER_LEN as u64, reason);
        crate::keygroup::check_max_parallelism(self.max_parallelism)
            .map_err(|e| bad(e.to_string()))?;
        if self.key_group_range.end() >= self.max_parallelism {
            return Err(bad(format!(
                "key-group range {} exceeds max parallelism {}",
                self.key_group_range, self.max_parallelism
            )));
        }
        for (i, s) in self.states.iter().enumerate() {
            if s.id as usize != i {
                return Err(bad(format!(
                    "state '{}' has id {} at position {i}",
                    s.name, s.id
                )));
            }
        }
        match &self.keyed {
            KeyedData::Full(full) => full.check(&self.key_group_range, &bad),
            KeyedData::Files(files) => files.check(&bad),
        }
    }
}
