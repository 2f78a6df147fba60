//! Checkpoints in an object store (`s3://`, `hdfs://`) through Apache OpenDAL:
//! its blocking API for reads, lists and deletes; uploads wait on its asynchronous
//! writer, which can abort a multipart upload that is not committed.
//!
//! Layout as in [`super::file`]: `<root>/chk-<id>/<name>` and `<root>/shared/<name>`.
//! An object store has no rename, but a PUT (or a completed multipart upload) is
//! atomic: an object is written under its final name and appears whole or not at
//! all. A checkpoint is visible only through its manifest, which the snapshot
//! writes after every data object; a checkpoint without one is never restored and
//! its objects are deleted by retention.
//!
//! OpenDAL runs on tokio: one small runtime per process serves every storage, and
//! the calling thread waits for each request.

use super::source::SnapshotSource;
use super::{CheckpointStorage, CheckpointWriter, RemoteOptions};
use crate::config::{CheckpointUrl, UrlTarget};
use crate::error::{Error, Result};
use opendal::blocking;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::{ListOptions, ReadOptions, WriteOptions};
use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};

/// Size of the parts of a multipart upload, and of our write buffer.
const PART_LEN: usize = 8 << 20;
/// Bytes fetched per read request: reads of a snapshot are mostly sequential and
/// small (one block), so one request serves many of them.
const READ_AHEAD: u64 = 1 << 20;

thread_local! {
    static BYTES_FETCHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Bytes the calling thread has fetched from remote snapshot objects (ranged reads
/// of [`RemoteSource`]): what a restore on this thread cost in transfer.
pub fn bytes_fetched_on_this_thread() -> u64 {
    BYTES_FETCHED.with(|n| n.get())
}

fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("statebackend-remote-io")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::invalid(format!("cannot start the remote storage runtime: {e}")))
}

/// The store behind a remote URL (a bucket, a name node) and the URL's directory
/// in it, as an object path without leading `/` (empty for the store's root).
fn split_url(url: &CheckpointUrl) -> Result<(Store, String)> {
    match url.target() {
        UrlTarget::S3 { bucket, prefix } => Ok((Store::S3(bucket.clone()), prefix.clone())),
        UrlTarget::Hdfs { name_node, path } => Ok((
            Store::Hdfs(name_node.clone()),
            path.trim_start_matches('/').to_string(),
        )),
        UrlTarget::Local(_) => Err(Error::invalid(format!(
            "{} is a local directory, not remote storage",
            url.as_str()
        ))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Store {
    S3(String),
    Hdfs(String),
}

/// The operator for a store, rooted at its top. Operators are cached per store and
/// options: each holds an HTTP client with its connection pool and TLS set-up.
fn operator(store: &Store, options: &RemoteOptions) -> Result<opendal::Operator> {
    let options = options.with_environment();
    type Cache = Mutex<HashMap<(Store, String), opendal::Operator>>;
    static OPERATORS: OnceLock<Cache> = OnceLock::new();
    let key = (
        store.clone(),
        format!("{options:?}|{:?}", options.secret_key),
    );
    let cache = OPERATORS.get_or_init(Default::default);
    if let Some(op) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(op.clone());
    }
    let op = build_operator(store, &options)?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, op.clone());
    Ok(op)
}

fn build_operator(store: &Store, options: &RemoteOptions) -> Result<opendal::Operator> {
    // The HTTP client (reqwest with rustls) that every HTTP service uses.
    static HTTP: std::sync::Once = std::sync::Once::new();
    HTTP.call_once(opendal::install_default);
    let bad =
        |e: opendal::Error| Error::invalid(format!("cannot set up remote storage {store:?}: {e}"));
    let op = match store {
        Store::S3(bucket) => {
            let mut s3 = opendal::services::S3::default()
                .bucket(bucket)
                .region(options.region.as_deref().unwrap_or("us-east-1"));
            if let Some(endpoint) = &options.endpoint {
                s3 = s3.endpoint(endpoint);
            }
            if let (Some(key), Some(secret)) = (&options.access_key, &options.secret_key) {
                s3 = s3.access_key_id(key).secret_access_key(secret);
                if let Some(token) = &options.session_token {
                    s3 = s3.session_token(token);
                }
            }
            if options.path_style == Some(false) {
                s3 = s3.enable_virtual_host_style();
            }
            opendal::Operator::new(s3).map_err(bad)?
        }
        Store::Hdfs(name_node) => {
            opendal::Operator::new(opendal::services::HdfsNative::default().name_node(name_node))
                .map_err(bad)?
        }
    };
    Ok(op
        .layer(RetryLayer::new().with_max_times(3))
        .layer(TimeoutLayer::new()))
}

/// The blocking face of an operator: each call waits on the calling thread.
fn blocking(op: opendal::Operator) -> Result<blocking::Operator> {
    let _guard = runtime()?.enter();
    blocking::Operator::new(op)
        .map_err(|e| Error::invalid(format!("cannot use remote storage: {e}")))
}

/// An OpenDAL error on `location`, as an I/O error naming it.
fn io_error(location: &str, e: opendal::Error) -> Error {
    let kind = match e.kind() {
        opendal::ErrorKind::NotFound => io::ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => io::ErrorKind::PermissionDenied,
        opendal::ErrorKind::AlreadyExists => io::ErrorKind::AlreadyExists,
        _ => io::ErrorKind::Other,
    };
    Error::io(location, io::Error::new(kind, e.to_string()))
}

/// Checkpoint storage under a remote URL.
#[derive(Debug)]
pub struct RemoteStorage {
    op: blocking::Operator,
    /// Uploads use the asynchronous API, which can abort a multipart upload.
    async_op: opendal::Operator,
    /// The URL's directory in the store: empty or ending in `/`.
    base: String,
    /// The URL without a trailing `/`: locations are `<url>/chk-<id>/<name>`.
    url: String,
}

impl RemoteStorage {
    pub fn open(url: &CheckpointUrl, options: &RemoteOptions) -> Result<Self> {
        let (store, dir) = split_url(url)?;
        let async_op = operator(&store, options)?;
        Ok(RemoteStorage {
            op: blocking(async_op.clone())?,
            async_op,
            base: if dir.is_empty() {
                dir
            } else {
                format!("{dir}/")
            },
            url: url.as_str().trim_end_matches('/').to_string(),
        })
    }

    /// The store path of `chk-<id>/<name>` (relative to the URL's directory).
    fn checkpoint_path(checkpoint_id: u64, name: &str) -> String {
        format!("chk-{checkpoint_id}/{name}")
    }

    /// `relative` (a path under the URL's directory) as a path in the store.
    fn store_path(&self, relative: &str) -> String {
        format!("{}{relative}", self.base)
    }

    fn location_of(&self, relative: &str) -> String {
        format!("{}/{relative}", self.url)
    }

    fn writer(&self, relative: String) -> Result<Box<dyn CheckpointWriter>> {
        let location = self.location_of(&relative);
        let writer = runtime()?
            .block_on(self.async_op.writer_options(
                &self.store_path(&relative),
                WriteOptions {
                    chunk: Some(PART_LEN),
                    ..Default::default()
                },
            ))
            .map_err(|e| io_error(&location, e))?;
        Ok(Box::new(RemoteWriter {
            writer: Some(writer),
            buffer: Vec::with_capacity(PART_LEN),
            location,
        }))
    }

    /// Names of the objects directly under directory `dir` (relative, empty or
    /// ending in `/`): files if `files`, else subdirectories (without their `/`).
    fn names_in(&self, dir: &str, files: bool) -> Result<Vec<String>> {
        let listed = self.store_path(dir);
        let listed = if listed.is_empty() { "/" } else { &listed };
        let entries = match self.op.list_options(listed, ListOptions::default()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&self.location_of(dir), e)),
        };
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|e| e.path().trim_start_matches('/') != listed.trim_start_matches('/'))
            .filter(|e| e.metadata().is_dir() != files)
            .map(|e| e.name().trim_end_matches('/').to_string())
            .filter(|n| !n.is_empty())
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, relative: &str) -> Result<()> {
        match self.op.delete(&self.store_path(relative)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&self.location_of(relative), e)),
        }
    }
}

/// The path of shared object `name` (`<dir>/<file>`) under the URL's directory.
fn shared_path(name: &str) -> Result<String> {
    super::check_shared_name(name)?;
    Ok(format!("{}/{name}", super::file::SHARED_DIR))
}

impl CheckpointStorage for RemoteStorage {
    fn create(&self, checkpoint_id: u64, name: &str) -> Result<Box<dyn CheckpointWriter>> {
        self.writer(Self::checkpoint_path(checkpoint_id, name))
    }

    fn discard(&self, checkpoint_id: u64, prefix: &str) -> Result<()> {
        for name in self.list(checkpoint_id)? {
            if name.starts_with(prefix) {
                self.delete(&Self::checkpoint_path(checkpoint_id, &name))?;
            }
        }
        Ok(())
    }

    fn checkpoints_with(&self, prefix: &str) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for id in self.checkpoint_ids()? {
            if self.list(id)?.iter().any(|n| n.starts_with(prefix)) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn location(&self, checkpoint_id: u64, name: &str) -> String {
        self.location_of(&Self::checkpoint_path(checkpoint_id, name))
    }

    fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .names_in("", false)?
            .iter()
            .filter_map(|n| n.strip_prefix("chk-")?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn list(&self, checkpoint_id: u64) -> Result<Vec<String>> {
        self.names_in(&format!("chk-{checkpoint_id}/"), true)
    }

    fn read(&self, checkpoint_id: u64, name: &str) -> Result<Vec<u8>> {
        let path = Self::checkpoint_path(checkpoint_id, name);
        self.op
            .read(&self.store_path(&path))
            .map(|b| b.to_vec())
            .map_err(|e| io_error(&self.location_of(&path), e))
    }

    fn modified(&self, checkpoint_id: u64, name: &str) -> Result<Option<std::time::SystemTime>> {
        let path = Self::checkpoint_path(checkpoint_id, name);
        let meta = self
            .op
            .stat(&self.store_path(&path))
            .map_err(|e| io_error(&self.location_of(&path), e))?;
        Ok(meta.last_modified().map(std::time::SystemTime::from))
    }

    fn create_shared(&self, name: &str) -> Result<Box<dyn CheckpointWriter>> {
        self.writer(shared_path(name)?)
    }

    fn discard_shared(&self, name: &str) -> Result<()> {
        self.delete(&shared_path(name)?)
    }

    fn list_shared(&self, dir: &str) -> Result<Vec<String>> {
        let names = self.names_in(&format!("{}/", shared_path(dir)?), true)?;
        Ok(names.into_iter().map(|n| format!("{dir}/{n}")).collect())
    }
}

/// An object being uploaded: buffered into parts, visible when closed. Dropped
/// unclosed, nothing appears, and a multipart upload already begun is aborted so
/// its parts do not linger in the bucket.
struct RemoteWriter {
    /// None once closed.
    writer: Option<opendal::Writer>,
    buffer: Vec<u8>,
    location: String,
}

impl RemoteWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let part = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_LEN));
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("upload already finished"))?;
        runtime()
            .map_err(io::Error::other)?
            .block_on(writer.write(part))
            .map_err(|e| io::Error::other(format!("upload to {}: {e}", self.location)))
    }
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        if let (Some(mut writer), Ok(runtime)) = (self.writer.take(), runtime()) {
            // Best effort: a failed checkpoint's error is already on its way.
            let _ = runtime.block_on(writer.abort());
        }
    }
}

impl Write for RemoteWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > PART_LEN {
            self.send_buffer()?;
        }
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts go out when full; the object appears at commit.
        Ok(())
    }
}

impl CheckpointWriter for RemoteWriter {
    fn commit(mut self: Box<Self>) -> Result<String> {
        self.send_buffer()
            .map_err(|e| Error::io(&self.location, e))?;
        let mut writer = self.writer.take().expect("not yet closed");
        if let Err(e) = runtime()?.block_on(writer.close()) {
            self.writer = Some(writer); // Dropping self aborts the upload.
            return Err(io_error(&self.location, e));
        }
        Ok(std::mem::take(&mut self.location))
    }
}

/// A stored object read by ranges, with a read-ahead window.
pub struct RemoteSource {
    op: blocking::Operator,
    path: String,
    location: String,
    len: u64,
    /// The last two fetched ranges, (offset, bytes), newest first: a reader that
    /// steps back a little (to the header of the block it just peeked at) still
    /// finds its bytes.
    windows: Mutex<[(u64, Vec<u8>); 2]>,
}

impl RemoteSource {
    /// Opens the object at `url` (`s3://bucket/dir/name`).
    pub fn open(url: &CheckpointUrl, options: &RemoteOptions) -> Result<Self> {
        let location = url.as_str().to_string();
        let (store, path) = split_url(url)?;
        if path.is_empty() || location.ends_with('/') {
            return Err(Error::invalid(format!(
                "{location} does not name an object"
            )));
        }
        let op = blocking(operator(&store, options)?)?;
        let len = op
            .stat(&path)
            .map_err(|e| io_error(&location, e))?
            .content_length();
        Ok(RemoteSource {
            op,
            path,
            location,
            len,
            windows: Mutex::new(Default::default()),
        })
    }
}

impl SnapshotSource for RemoteSource {
    fn name(&self) -> &str {
        &self.location
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.len => end,
            _ => {
                return Err(Error::corrupted(
                    &self.location,
                    offset,
                    format!(
                        "read of {} bytes past the end ({} bytes)",
                        buf.len(),
                        self.len
                    ),
                ))
            }
        };
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let holds = |(start, bytes): &(u64, Vec<u8>)| {
            offset >= *start && end <= *start + bytes.len() as u64
        };
        if !holds(&windows[0]) {
            if holds(&windows[1]) {
                windows.swap(0, 1);
            } else {
                let fetch_end = end.max(offset.saturating_add(READ_AHEAD)).min(self.len);
                let fetched = self
                    .op
                    .read_options(
                        &self.path,
                        ReadOptions {
                            range: (offset..fetch_end).into(),
                            ..Default::default()
                        },
                    )
                    .map_err(|e| io_error(&self.location, e))?
                    .to_vec();
                BYTES_FETCHED.with(|n| n.set(n.get() + fetched.len() as u64));
                if (fetched.len() as u64) < end - offset {
                    return Err(Error::corrupted(
                        &self.location,
                        offset + fetched.len() as u64,
                        "the object ended early",
                    ));
                }
                windows[1] = std::mem::replace(&mut windows[0], (offset, fetched));
            }
        }
        let (start, bytes) = &windows[0];
        let at = (offset - start) as usize;
        buf.copy_from_slice(&bytes[at..at + buf.len()]);
        Ok(())
    }
}
