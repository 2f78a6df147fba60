//! Where snapshots go. A [`CheckpointStorage`] creates objects that become visible
//! only when committed; [`file`](mod@file) is the built-in local-filesystem storage, and
//! [`source`] reads snapshots back (from bytes or files).
//!
//! The Memory backend has no storage: its snapshot is returned inline as bytes.

pub mod file;
pub mod source;

use crate::error::Result;
use std::io::Write;

/// A place snapshot objects are written to, e.g. a directory or an object store.
pub trait CheckpointStorage: Send + Sync + std::fmt::Debug {
    /// Starts a new object `name` of checkpoint `checkpoint_id`. Nothing is visible
    /// under its final name until [`CheckpointWriter::commit`] returns.
    fn create(&self, checkpoint_id: u64, name: &str) -> Result<Box<dyn CheckpointWriter>>;

    /// Deletes every object of a checkpoint whose name starts with `prefix` (committed
    /// or not), and the checkpoint's directory when nothing else remains in it.
    fn discard(&self, checkpoint_id: u64, prefix: &str) -> Result<()>;

    /// Ids of the checkpoints holding any object whose name starts with `prefix`, ascending.
    fn checkpoints_with(&self, prefix: &str) -> Result<Vec<u64>>;

    /// The committed location of object `name` of a checkpoint (a path or URL).
    fn location(&self, checkpoint_id: u64, name: &str) -> String;

    /// Ids of all checkpoints in the storage, ascending.
    fn checkpoint_ids(&self) -> Result<Vec<u64>>;

    /// Names of the committed objects of a checkpoint (no unfinished ones).
    fn list(&self, checkpoint_id: u64) -> Result<Vec<String>>;

    /// Reads a committed object of a checkpoint.
    fn read(&self, checkpoint_id: u64, name: &str) -> Result<Vec<u8>>;

    /// Starts a shared object `<root>/shared/<name>`: a file that several checkpoints
    /// reference (incremental RocksDB checkpoints). `name` may contain one `/`.
    fn create_shared(&self, name: &str) -> Result<Box<dyn CheckpointWriter>>;

    /// Deletes a shared object; a missing one is not an error.
    fn discard_shared(&self, name: &str) -> Result<()>;

    /// Names of the shared objects under `<root>/shared/<dir>/`, as `<dir>/<file>`,
    /// including unfinished ones (temporary files of interrupted uploads).
    fn list_shared(&self, dir: &str) -> Result<Vec<String>>;
}

/// An object being written. Dropping it without commit leaves nothing visible.
pub trait CheckpointWriter: Write + Send {
    /// Makes the object durable and visible under its final name; returns its location.
    fn commit(self: Box<Self>) -> Result<String>;
}
