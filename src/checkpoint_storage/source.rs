//! Random-access reading of snapshot bytes: inline bytes or a file.

use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Snapshot bytes that can be read at any offset.
pub trait SnapshotSource: Send + Sync {
    /// Names the source in error messages (a path, or "inline snapshot of ...").
    fn name(&self) -> &str;
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset`; reading past the end is a corruption error.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// A slice of shared bytes (the memory backend's inline snapshots).
pub struct BytesSource {
    name: String,
    bytes: Arc<[u8]>,
    start: usize,
    len: usize,
}

impl BytesSource {
    pub fn new(name: String, bytes: Arc<[u8]>, start: usize, len: usize) -> Self {
        BytesSource {
            name,
            bytes,
            start,
            len,
        }
    }
}

impl SnapshotSource for BytesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.len as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= self.len as u64 => {
                let s = self.start + offset as usize;
                buf.copy_from_slice(&self.bytes[s..s + buf.len()]);
                Ok(())
            }
            _ => Err(Error::corrupted(
                &self.name,
                offset,
                format!(
                    "read of {} bytes past the end ({} bytes)",
                    buf.len(),
                    self.len
                ),
            )),
        }
    }
}

/// A local file.
pub struct FileSource {
    name: String,
    file: File,
    len: u64,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(FileSource {
            name: path.display().to_string(),
            file,
            len,
        })
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.name)
    }
}

impl SnapshotSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupted(&self.name, offset, "unexpected end of file")
            } else {
                Error::io(&self.name, e)
            }
        })
    }
}

/// A range of another source (the data part of a single-stream snapshot).
pub struct SliceSource {
    inner: Arc<dyn SnapshotSource>,
    start: u64,
    len: u64,
}

impl SliceSource {
    pub fn new(inner: Arc<dyn SnapshotSource>, start: u64, len: u64) -> Self {
        SliceSource { inner, start, len }
    }
}

impl SnapshotSource for SliceSource {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => self.inner.read_exact_at(self.start + offset, buf),
            _ => Err(Error::corrupted(
                self.name(),
                self.start + offset,
                format!("read of {} bytes past the end", buf.len()),
            )),
        }
    }
}
