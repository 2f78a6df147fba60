//! Where snapshots go. A [`CheckpointStorage`] creates objects that become visible
//! only when committed; [`file`](mod@file) is the local-filesystem storage,
//! `remote` (cargo feature `remote`) the object stores (S3, HDFS) through Apache
//! OpenDAL, and [`source`] reads snapshots back (from bytes, files or objects).
//!
//! The Memory backend has no storage: its snapshot is returned inline as bytes.

pub mod file;
#[cfg(feature = "remote")]
pub mod remote;
pub mod source;

use crate::config::{keys, parse_bool, CheckpointUrl, UrlTarget};
use crate::error::{Error, Result};
use source::{FileSource, SnapshotSource};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The storage behind a checkpoint directory URL.
pub fn open(url: &CheckpointUrl, remote: &RemoteOptions) -> Result<Arc<dyn CheckpointStorage>> {
    match url.target() {
        UrlTarget::Local(path) => Ok(Arc::new(file::FileStorage::new(path))),
        #[cfg(feature = "remote")]
        _ => Ok(Arc::new(remote::RemoteStorage::open(url, remote)?)),
        #[cfg(not(feature = "remote"))]
        _ => {
            let _ = remote;
            Err(no_remote_support(url.as_str()))
        }
    }
}

/// Opens a stored object for reading by its location: a local path, or a URL as
/// [`CheckpointStorage::location`] gives it.
pub fn open_source(location: &str, remote: &RemoteOptions) -> Result<Arc<dyn SnapshotSource>> {
    if location.starts_with('/') {
        return Ok(Arc::new(FileSource::open(Path::new(location))?));
    }
    let url = CheckpointUrl::parse(location)
        .map_err(|reason| Error::invalid(format!("snapshot location '{location}': {reason}")))?;
    match url.target() {
        UrlTarget::Local(path) => Ok(Arc::new(FileSource::open(path)?)),
        #[cfg(feature = "remote")]
        _ => Ok(Arc::new(remote::RemoteSource::open(&url, remote)?)),
        #[cfg(not(feature = "remote"))]
        _ => {
            let _ = remote;
            Err(no_remote_support(location))
        }
    }
}

#[cfg(not(feature = "remote"))]
fn no_remote_support(url: &str) -> Error {
    Error::invalid(format!(
        "{url}: this build has no remote checkpoint storage (build with the cargo feature `remote`)"
    ))
}

/// Checks the name of a shared object (`<dir>/<file>`): no empty, `.` or `..`
/// segments, so it cannot leave the shared directory.
pub(crate) fn check_shared_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(Error::invalid(format!("bad shared object name '{name}'")));
    }
    Ok(())
}

/// The location of object `name` beside the object at `location` (same directory).
pub fn sibling(location: &str, name: &str) -> String {
    match location.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_string(),
    }
}

/// Settings of remote checkpoint storage, from Flink's `s3.*` keys; what is unset
/// comes from the standard AWS environment variables when the storage opens.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RemoteOptions {
    /// `s3.endpoint` (else `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`; else AWS).
    pub endpoint: Option<String>,
    /// `s3.region` (else `AWS_REGION`, `AWS_DEFAULT_REGION`; else `us-east-1`).
    pub region: Option<String>,
    /// `s3.access-key` (else `AWS_ACCESS_KEY_ID`).
    pub access_key: Option<String>,
    /// `s3.secret-key` (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_key: Option<String>,
    /// `s3.session-token` (else `AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// `s3.path.style.access`: path-style requests; default true.
    pub path_style: Option<bool>,
}

// Credentials stay out of logs and error messages.
impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("RemoteOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &hidden(&self.secret_key))
            .field("session_token", &hidden(&self.session_token))
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl RemoteOptions {
    /// Reads the `s3.*` keys this library uses; Flink's other `s3.*` keys are ignored.
    pub fn from_pairs(pairs: &BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| pairs.get(k).filter(|v| !v.is_empty()).cloned();
        Ok(RemoteOptions {
            endpoint: get(keys::S3_ENDPOINT),
            region: get(keys::S3_REGION),
            access_key: get(keys::S3_ACCESS_KEY),
            secret_key: get(keys::S3_SECRET_KEY),
            session_token: get(keys::S3_SESSION_TOKEN),
            path_style: get(keys::S3_PATH_STYLE)
                .map(|v| parse_bool(keys::S3_PATH_STYLE, &v))
                .transpose()?,
        })
    }

    /// These options, with what is unset taken from the AWS environment variables.
    pub fn with_environment(&self) -> Self {
        let env = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        };
        RemoteOptions {
            endpoint: self
                .endpoint
                .clone()
                .or_else(|| env(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
            region: self
                .region
                .clone()
                .or_else(|| env(&["AWS_REGION", "AWS_DEFAULT_REGION"])),
            access_key: self
                .access_key
                .clone()
                .or_else(|| env(&["AWS_ACCESS_KEY_ID"])),
            secret_key: self
                .secret_key
                .clone()
                .or_else(|| env(&["AWS_SECRET_ACCESS_KEY"])),
            session_token: self
                .session_token
                .clone()
                .or_else(|| env(&["AWS_SESSION_TOKEN"])),
            path_style: self.path_style,
        }
    }
}

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

    /// When a committed object of a checkpoint was last written, if the storage knows.
    fn modified(&self, checkpoint_id: u64, name: &str) -> Result<Option<std::time::SystemTime>>;

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
