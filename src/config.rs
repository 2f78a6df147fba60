//! Backend configuration: a typed [`Config`], and parsing of Flink's configuration
//! keys (classic and modern) from key/value pairs or a flink-conf.yaml-style file.

pub use crate::checkpoint_storage::RemoteOptions;
use crate::error::{Error, Result};
use crate::keygroup::{self, KeyGroupRange};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The memory backend's default limit per state: 5 MiB, as Flink's MemoryStateBackend.
pub const DEFAULT_MAX_STATE_SIZE: u64 = 5 * 1024 * 1024;
/// Flink's default max parallelism for a job that does not set one.
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// Configuration keys understood by [`Config::from_pairs`].
pub mod keys {
    /// Modern Flink: `hashmap` | `rocksdb` | a factory class name; ours adds `memory`, `fs`.
    pub const BACKEND_TYPE: &str = "state.backend.type";
    /// Classic Flink: `jobmanager` | `filesystem` | `rocksdb` | a factory class name.
    pub const BACKEND_CLASSIC: &str = "state.backend";
    /// Modern checkpoint directory URL.
    pub const CHECKPOINTS_DIR: &str = "state.checkpoints.dir";
    /// Classic checkpoint directory URL.
    pub const FS_CHECKPOINT_DIR_CLASSIC: &str = "state.backend.fs.checkpointdir";
    /// How many completed checkpoints to keep.
    pub const NUM_RETAINED: &str = "state.checkpoints.num-retained";
    /// Incremental checkpoints (RocksDB backend).
    pub const INCREMENTAL: &str = "state.backend.incremental";
    /// Number of key groups.
    pub const MAX_PARALLELISM: &str = "pipeline.max-parallelism";
    /// Flink's RocksDB local directory; also our local working directory.
    pub const ROCKSDB_LOCAL_DIR: &str = "state.backend.rocksdb.localdir";
    /// Prefix of RocksDB option overrides.
    pub const ROCKSDB_PREFIX: &str = "state.backend.rocksdb.";
    /// Share of a shared RocksDB memory budget given to the write-back caches.
    pub const WRITE_CACHE_RATIO: &str = "state.backend.rocksdb.memory.write-cache-ratio";
    /// Prefix of this library's own keys; an unknown key under it is an error.
    pub const NATIVE_PREFIX: &str = "state.backend.native.";
    /// Our local working directory (wins over `state.backend.rocksdb.localdir`).
    pub const LOCAL_DIR: &str = "state.backend.native.local-dir";
    /// Key-group range this instance owns, `start-end` inclusive.
    pub const KEY_GROUP_RANGE: &str = "state.backend.native.key-group-range";
    /// Subtask index; with `parallelism`, derives the key-group range as Flink does.
    pub const SUBTASK_INDEX: &str = "state.backend.native.subtask-index";
    /// Parallelism of the operator; see `subtask-index`.
    pub const PARALLELISM: &str = "state.backend.native.parallelism";
    /// Memory backend: maximum serialized size of one state in a snapshot.
    pub const MAX_STATE_SIZE: &str = "state.backend.native.memory.max-state-size";
    /// S3 endpoint URL, e.g. `http://127.0.0.1:9000` (Flink's S3 file systems' key).
    pub const S3_ENDPOINT: &str = "s3.endpoint";
    /// S3 region (default: `AWS_REGION`, else `us-east-1`).
    pub const S3_REGION: &str = "s3.region";
    /// S3 access key id (default: `AWS_ACCESS_KEY_ID`).
    pub const S3_ACCESS_KEY: &str = "s3.access-key";
    /// S3 secret access key (default: `AWS_SECRET_ACCESS_KEY`).
    pub const S3_SECRET_KEY: &str = "s3.secret-key";
    /// S3 session token of temporary credentials (default: `AWS_SESSION_TOKEN`).
    pub const S3_SESSION_TOKEN: &str = "s3.session-token";
    /// `true`: path-style requests (`endpoint/bucket/key`, most S3-compatible
    /// servers); `false`: virtual-hosted style (`bucket.endpoint/key`).
    pub const S3_PATH_STYLE: &str = "s3.path.style.access";
}

/// Which of the three backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendKind {
    /// Working state in native memory; snapshots returned inline as bytes.
    Memory,
    /// Working state in native memory; snapshots written under a URL.
    Fs,
    /// Working state in embedded RocksDB on local disk; snapshots under a URL.
    RocksDb,
}

impl BackendKind {
    /// Every kind, in the order of the C ABI's `sb_backend_kind`.
    pub const ALL: [BackendKind; 3] = [BackendKind::Memory, BackendKind::Fs, BackendKind::RocksDb];

    pub fn name(&self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Fs => "fs",
            BackendKind::RocksDb => "rocksdb",
        }
    }

    /// The kind named `name` (see [`BackendKind::name`]).
    pub fn from_name(name: &str) -> Result<Self> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown backend kind '{name}' (memory, fs or rocksdb)"
                ))
            })
    }
}

/// Where checkpoints of a URL-based backend go: a local directory (`file://`), an
/// S3 bucket and prefix (`s3://`), or an HDFS directory (`hdfs://`). The remote ones
/// need the `remote` cargo feature (on by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointUrl {
    url: String,
    target: UrlTarget,
}

/// What a [`CheckpointUrl`] points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlTarget {
    /// A local directory.
    Local(PathBuf),
    /// `s3://bucket/prefix` (also `s3a://`, `s3p://`, as Flink accepts them).
    S3 {
        bucket: String,
        /// The key prefix without leading or trailing `/`; empty for the bucket's root.
        prefix: String,
    },
    /// `hdfs://name-node[:port]/path`.
    Hdfs {
        /// `hdfs://name-node[:port]`.
        name_node: String,
        /// The absolute directory on HDFS.
        path: String,
    },
}

impl CheckpointUrl {
    /// Parses `file:///abs/path`, `file:/abs/path`, a plain absolute path,
    /// `s3://bucket[/prefix]` or `hdfs://name-node[:port]/path`.
    pub fn parse(url: &str) -> std::result::Result<Self, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the URL is empty".into());
        }
        let target = match url.split_once(':') {
            Some((scheme, rest))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                match scheme.to_ascii_lowercase().as_str() {
                    "file" => UrlTarget::Local(parse_file_url_rest(rest)?),
                    "s3" | "s3a" | "s3p" => parse_s3_rest(rest)?,
                    "hdfs" => parse_hdfs_rest(rest)?,
                    other => {
                        return Err(format!(
                            "unsupported scheme '{other}': expected file://, s3:// or hdfs://"
                        ))
                    }
                }
            }
            _ if url.starts_with('/') => UrlTarget::Local(PathBuf::from(url)),
            _ => {
                return Err(
                    "not a URL: expected file:///absolute/path (or an absolute path), \
                     s3://bucket/prefix or hdfs://name-node:port/path"
                        .into(),
                )
            }
        };
        if let UrlTarget::Local(path) = &target {
            if path
                .components()
                .any(|c| c == std::path::Component::ParentDir)
            {
                return Err("the path must not contain '..'".into());
            }
        }
        Ok(CheckpointUrl {
            url: url.to_string(),
            target,
        })
    }

    /// A URL for a local directory.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(Error::invalid(format!(
                "checkpoint directory {} must be absolute",
                path.display()
            )));
        }
        Ok(CheckpointUrl {
            url: format!("file://{}", path.display()),
            target: UrlTarget::Local(path.to_path_buf()),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn target(&self) -> &UrlTarget {
        &self.target
    }

    /// The local directory behind a `file://` URL; None for remote storage.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.target {
            UrlTarget::Local(path) => Some(path),
            UrlTarget::S3 { .. } | UrlTarget::Hdfs { .. } => None,
        }
    }
}

/// The part of an `s3://` URL after the scheme: `//bucket[/prefix]`.
fn parse_s3_rest(rest: &str) -> std::result::Result<UrlTarget, String> {
    let after = rest
        .strip_prefix("//")
        .ok_or("an S3 URL is s3://bucket/prefix")?;
    let (bucket, prefix) = after.split_once('/').unwrap_or((after, ""));
    // S3's bucket naming rules: 3-63 characters, lower-case letters, digits, '.', '-'.
    if bucket.len() < 3
        || bucket.len() > 63
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err(format!(
            "'{bucket}' is not an S3 bucket name (3-63 characters: a-z, 0-9, '.', '-')"
        ));
    }
    Ok(UrlTarget::S3 {
        bucket: bucket.to_string(),
        prefix: clean_object_path(prefix)?,
    })
}

/// The part of an `hdfs://` URL after the scheme: `//name-node[:port]/path`.
fn parse_hdfs_rest(rest: &str) -> std::result::Result<UrlTarget, String> {
    let after = rest
        .strip_prefix("//")
        .ok_or("an HDFS URL is hdfs://name-node:port/path")?;
    let (authority, path) = after.split_once('/').unwrap_or((after, ""));
    let host = authority.rsplit_once(':').map_or(authority, |(h, port)| {
        if port.parse::<u16>().is_ok() {
            h
        } else {
            ""
        }
    });
    if host.is_empty() || host.contains(['@', '?', '#']) {
        return Err(format!(
            "'{authority}' is not a name node: expected hdfs://host:port/path"
        ));
    }
    Ok(UrlTarget::Hdfs {
        name_node: format!("hdfs://{authority}"),
        path: format!("/{}", clean_object_path(path)?),
    })
}

/// An object-store path without leading or trailing `/`, refusing empty, `.` and
/// `..` segments (they would leave the checkpoint directory or alias it).
fn clean_object_path(path: &str) -> std::result::Result<String, String> {
    let path = path.trim_matches('/');
    if path.contains(['?', '#', '\0']) {
        return Err("the path must not contain '?', '#' or NUL".into());
    }
    if !path.is_empty()
        && path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "the path '{path}' has an empty, '.' or '..' segment"
        ));
    }
    Ok(path.to_string())
}

fn parse_file_url_rest(rest: &str) -> std::result::Result<PathBuf, String> {
    // file:///p (empty authority), file://localhost/p, or file:/p.
    let path = if let Some(after) = rest.strip_prefix("//") {
        let (host, path) = match after.find('/') {
            Some(i) => after.split_at(i),
            None => return Err("a file URL needs an absolute path: file:///path".into()),
        };
        if !host.is_empty() && host != "localhost" {
            return Err(format!(
                "file URL with host '{host}': write file:///path (three slashes)"
            ));
        }
        path
    } else {
        rest
    };
    if !path.starts_with('/') || path.len() < 2 {
        return Err("a file URL needs an absolute path: file:///path".into());
    }
    if path.contains(['?', '#']) || path.contains('\0') {
        return Err("a file URL must not contain '?', '#' or NUL".into());
    }
    Ok(PathBuf::from(path))
}

/// The configuration of one backend instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which backend.
    pub backend: BackendKind,
    /// Where snapshots go (required by Fs and RocksDB; Memory returns them inline).
    pub checkpoint_dir: Option<CheckpointUrl>,
    /// Local working directory (RocksDB files); the system temp dir if unset.
    pub local_dir: Option<PathBuf>,
    /// Number of key groups of the job.
    pub max_parallelism: u32,
    /// Key groups this instance owns.
    pub key_group_range: KeyGroupRange,
    /// Memory backend: maximum serialized size of one state in one snapshot.
    pub max_state_size: u64,
    /// Completed checkpoints to keep under the checkpoint directory.
    pub retained_checkpoints: usize,
    /// RocksDB: incremental checkpoints.
    pub incremental: bool,
    /// RocksDB option overrides (`state.backend.rocksdb.*` keys, prefix removed).
    pub rocksdb_options: BTreeMap<String, String>,
    /// (subtask index, parallelism) of this instance: decides its share of operator
    /// state on restore. (0, 1) takes everything.
    pub subtask: (u32, u32),
    /// How to reach remote checkpoint storage (`s3.*` keys).
    pub remote: RemoteOptions,
    /// RocksDB: a memory budget shared with other backends (Flink: the slot's
    /// managed memory). When set, block cache, memtables and the write-back cache
    /// come from it, not from `memory.fixed-per-slot` and `write-cache.size`.
    pub memory: Option<crate::store::rocks::memory::SharedMemory>,
}

impl Config {
    fn with_backend(backend: BackendKind, checkpoint_dir: Option<CheckpointUrl>) -> Self {
        Config {
            backend,
            checkpoint_dir,
            local_dir: None,
            max_parallelism: DEFAULT_MAX_PARALLELISM,
            key_group_range: KeyGroupRange::new(0, DEFAULT_MAX_PARALLELISM - 1).expect("non-empty"),
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            retained_checkpoints: 1,
            incremental: false,
            rocksdb_options: BTreeMap::new(),
            subtask: (0, 1),
            remote: RemoteOptions::default(),
            memory: None,
        }
    }

    /// A backend of `kind` whose snapshots the caller streams to storage of its own
    /// ([`crate::PendingSnapshot::write_to`], [`crate::IncrementalUpload`]: Flink's
    /// checkpoint streams), owning key groups `range` of `max_parallelism`: no
    /// checkpoint directory. Open it with [`crate::StateBackend::restore_with_storage`]
    /// and no storage.
    pub fn streamed(kind: BackendKind, max_parallelism: u32, range: KeyGroupRange) -> Result<Self> {
        let mut config = Config::with_backend(kind, None).with_max_parallelism(max_parallelism)?;
        config.key_group_range = range;
        Ok(config)
    }

    /// The memory backend: snapshots are returned as bytes.
    pub fn memory() -> Self {
        Config::with_backend(BackendKind::Memory, None)
    }

    /// The fs backend writing snapshots under `checkpoint_url` (e.g. `file:///data/ckpt`).
    pub fn fs(checkpoint_url: &str) -> Result<Self> {
        Ok(Config::with_backend(
            BackendKind::Fs,
            Some(parse_url(keys::CHECKPOINTS_DIR, checkpoint_url)?),
        ))
    }

    /// The RocksDB backend writing snapshots under `checkpoint_url`.
    pub fn rocksdb(checkpoint_url: &str) -> Result<Self> {
        Ok(Config::with_backend(
            BackendKind::RocksDb,
            Some(parse_url(keys::CHECKPOINTS_DIR, checkpoint_url)?),
        ))
    }

    /// Sets the number of key groups; the owned range becomes all of them.
    pub fn with_max_parallelism(mut self, max_parallelism: u32) -> Result<Self> {
        self.key_group_range = KeyGroupRange::all(max_parallelism)?;
        self.max_parallelism = max_parallelism;
        Ok(self)
    }

    /// Makes this instance subtask `index` of `parallelism`: it owns Flink's key-group
    /// range for that index and its share of operator state.
    pub fn with_subtask(mut self, index: u32, parallelism: u32) -> Result<Self> {
        self.key_group_range =
            keygroup::range_for_operator(self.max_parallelism, parallelism, index)?;
        self.subtask = (index, parallelism);
        Ok(self)
    }

    /// Sets the key groups this instance owns.
    pub fn with_key_group_range(mut self, range: KeyGroupRange) -> Self {
        self.key_group_range = range;
        self
    }

    pub fn with_local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }

    /// Sets the RocksDB option `key`, a whole `state.backend.rocksdb.*` key (its
    /// value is checked when the backend opens).
    pub fn set_rocksdb_option(&mut self, key: &str, value: &str) -> Result<()> {
        let option = key
            .strip_prefix(keys::ROCKSDB_PREFIX)
            .ok_or_else(|| Error::invalid(format!("{key} is not a RocksDB option")))?;
        self.rocksdb_options
            .insert(option.to_string(), value.to_string());
        Ok(())
    }

    /// Whether `key`, a whole `state.backend.rocksdb.*` key, is a RocksDB option
    /// this library knows (Flink's jobs pass on their whole configuration, which
    /// may hold options of Flink's own RocksDB backend).
    pub fn knows_rocksdb_option(key: &str) -> bool {
        key.strip_prefix(keys::ROCKSDB_PREFIX)
            .is_some_and(crate::store::rocks::options::is_known)
    }

    pub fn with_max_state_size(mut self, bytes: u64) -> Self {
        self.max_state_size = bytes;
        self
    }

    pub fn with_retained_checkpoints(mut self, n: usize) -> Self {
        self.retained_checkpoints = n;
        self
    }

    pub fn with_incremental(mut self, incremental: bool) -> Self {
        self.incremental = incremental;
        self
    }

    /// Checks the combination of settings, including that Fs and RocksDB have a
    /// checkpoint directory; [`crate::StateBackend::open`] calls it.
    pub fn validate(&self) -> Result<()> {
        self.validate_settings()?;
        if self.backend != BackendKind::Memory && self.checkpoint_dir.is_none() {
            return Err(Error::Config {
                key: keys::CHECKPOINTS_DIR.into(),
                value: String::new(),
                reason: format!(
                    "the {} backend needs a checkpoint directory URL",
                    self.backend.name()
                ),
            });
        }
        Ok(())
    }

    /// Checks the settings except the checkpoint directory, which a backend whose
    /// snapshots go elsewhere (a caller-provided storage or stream) does not need.
    /// A shared memory budget ([`Config::memory`]) is for the RocksDB backend only.
    pub fn check_shared_memory_allowed(&self) -> Result<()> {
        if self.backend == BackendKind::RocksDb {
            return Ok(());
        }
        Err(Error::Config {
            key: keys::BACKEND_TYPE.into(),
            value: self.backend.name().into(),
            reason:
                "a shared memory budget is for the RocksDB backend (state.backend.type: rocksdb)"
                    .into(),
        })
    }

    pub fn validate_settings(&self) -> Result<()> {
        keygroup::check_max_parallelism(self.max_parallelism)?;
        if self.memory.is_some() {
            self.check_shared_memory_allowed()?;
        }
        if self.key_group_range.end() >= self.max_parallelism {
            return Err(Error::Config {
                key: keys::KEY_GROUP_RANGE.into(),
                value: self.key_group_range.to_string(),
                reason: format!(
                    "the range must lie within 0-{} (max parallelism {})",
                    self.max_parallelism - 1,
                    self.max_parallelism
                ),
            });
        }
        if self.retained_checkpoints == 0 {
            return Err(Error::Config {
                key: keys::NUM_RETAINED.into(),
                value: "0".into(),
                reason: "at least one checkpoint must be retained".into(),
            });
        }
        crate::store::rocks::options::RocksOptions::from_config(&self.rocksdb_options)?;
        if self.max_state_size == 0 {
            return Err(Error::Config {
                key: keys::MAX_STATE_SIZE.into(),
                value: "0".into(),
                reason: "the limit must be positive".into(),
            });
        }
        Ok(())
    }

    /// Builds a configuration from Flink-style key/value pairs.
    ///
    /// Keys this library does not know are ignored (a flink-conf.yaml holds many),
    /// except under `state.backend.native.`, where an unknown key is an error.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().trim().to_string(), v.as_ref().trim().to_string()))
            .collect();
        let get = |k: &str| map.get(k).map(String::as_str);

        let checkpoint_dir = match (
            get(keys::CHECKPOINTS_DIR),
            get(keys::FS_CHECKPOINT_DIR_CLASSIC),
        ) {
            (Some(v), _) => Some(parse_url(keys::CHECKPOINTS_DIR, v)?),
            (None, Some(v)) => Some(parse_url(keys::FS_CHECKPOINT_DIR_CLASSIC, v)?),
            (None, None) => None,
        };
        let backend = match (get(keys::BACKEND_TYPE), get(keys::BACKEND_CLASSIC)) {
            (Some(v), _) => parse_backend(keys::BACKEND_TYPE, v, checkpoint_dir.is_some())?,
            (None, Some(v)) => parse_backend(keys::BACKEND_CLASSIC, v, checkpoint_dir.is_some())?,
            // Flink's default: heap state, checkpoints to the JobManager unless a directory is set.
            (None, None) if checkpoint_dir.is_some() => BackendKind::Fs,
            (None, None) => BackendKind::Memory,
        };
        let mut config = Config::with_backend(backend, checkpoint_dir);

        if let Some(v) = get(keys::MAX_PARALLELISM) {
            let n = parse_num::<u32>(keys::MAX_PARALLELISM, v)?;
            config = config.with_max_parallelism(n).map_err(|e| Error::Config {
                key: keys::MAX_PARALLELISM.into(),
                value: v.into(),
                reason: e.to_string(),
            })?;
        }
        match (
            get(keys::KEY_GROUP_RANGE),
            get(keys::SUBTASK_INDEX),
            get(keys::PARALLELISM),
        ) {
            (Some(v), None, None) => {
                config.key_group_range = KeyGroupRange::parse(v).ok_or_else(|| Error::Config {
                    key: keys::KEY_GROUP_RANGE.into(),
                    value: v.into(),
                    reason: "expected 'start-end' with start <= end".into(),
                })?;
            }
            (None, Some(i), Some(p)) => {
                let i = parse_num::<u32>(keys::SUBTASK_INDEX, i)?;
                let p_num = parse_num::<u32>(keys::PARALLELISM, p)?;
                config = config.with_subtask(i, p_num).map_err(|e| Error::Config {
                    key: keys::PARALLELISM.into(),
                    value: p.into(),
                    reason: e.to_string(),
                })?;
            }
            (None, None, None) => {}
            _ => {
                return Err(Error::Config {
                    key: keys::KEY_GROUP_RANGE.into(),
                    value: get(keys::KEY_GROUP_RANGE).unwrap_or("").into(),
                    reason: format!(
                        "set either {} or both {} and {}",
                        keys::KEY_GROUP_RANGE,
                        keys::SUBTASK_INDEX,
                        keys::PARALLELISM
                    ),
                })
            }
        }
        if let Some(v) = get(keys::NUM_RETAINED) {
            config.retained_checkpoints = parse_num(keys::NUM_RETAINED, v)?;
        }
        if let Some(v) = get(keys::INCREMENTAL) {
            config.incremental = parse_bool(keys::INCREMENTAL, v)?;
        }
        if let Some(v) = get(keys::MAX_STATE_SIZE) {
            config.max_state_size = parse_memory_size(keys::MAX_STATE_SIZE, v)?;
        }
        config.remote = RemoteOptions::from_pairs(&map)?;
        if let Some(v) = get(keys::LOCAL_DIR).or(get(keys::ROCKSDB_LOCAL_DIR)) {
            config.local_dir = Some(PathBuf::from(v));
        }
        for (k, v) in &map {
            if k.starts_with(keys::ROCKSDB_PREFIX) {
                if k != keys::ROCKSDB_LOCAL_DIR {
                    config.set_rocksdb_option(k, v)?;
                }
            } else if k.starts_with(keys::NATIVE_PREFIX)
                && ![
                    keys::LOCAL_DIR,
                    keys::KEY_GROUP_RANGE,
                    keys::SUBTASK_INDEX,
                    keys::PARALLELISM,
                    keys::MAX_STATE_SIZE,
                ]
                .contains(&k.as_str())
            {
                return Err(Error::Config {
                    key: k.clone(),
                    value: v.clone(),
                    reason: "unknown option".into(),
                });
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a flink-conf.yaml-style file: one `key: value` per line, `#` comments.
    /// This is the flat format Flink 1.x reads; nested YAML is not supported.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::from_pairs(
            parse_flink_conf(&text).map_err(|(line, reason)| Error::Config {
                key: format!("{}:{line}", path.display()),
                value: text.lines().nth(line - 1).unwrap_or("").to_string(),
                reason,
            })?,
        )
    }
}

/// Parses flink-conf.yaml text into pairs; errors carry the 1-based line number.
pub fn parse_flink_conf(text: &str) -> std::result::Result<Vec<(String, String)>, (usize, String)> {
    let mut pairs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line
            .split_once(": ")
            .or_else(|| line.strip_suffix(':').map(|k| (k, "")))
        else {
            return Err((i + 1, "expected 'key: value'".into()));
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .unwrap_or(v);
        pairs.push((k.trim().to_string(), v.to_string()));
    }
    Ok(pairs)
}

fn strip_comment(line: &str) -> &str {
    // A '#' starts a comment at the line start or after whitespace (so URLs keep fragments).
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn parse_url(key: &str, value: &str) -> Result<CheckpointUrl> {
    CheckpointUrl::parse(value).map_err(|reason| Error::Config {
        key: key.into(),
        value: value.into(),
        reason,
    })
}

fn parse_backend(key: &str, value: &str, has_dir: bool) -> Result<BackendKind> {
    let value_lower = value.to_ascii_lowercase();
    if let Ok(kind) = BackendKind::from_name(&value_lower) {
        return Ok(kind);
    }
    Ok(match value_lower.as_str() {
        "jobmanager" => BackendKind::Memory,
        "filesystem" => BackendKind::Fs,
        "hashmap" if has_dir => BackendKind::Fs,
        "hashmap" => BackendKind::Memory,
        "io.statebackend.nativememorybackendfactory" => BackendKind::Memory,
        "io.statebackend.nativefsbackendfactory" => BackendKind::Fs,
        "io.statebackend.nativerocksdbbackendfactory" => BackendKind::RocksDb,
        _ => {
            return Err(Error::Config {
                key: key.into(),
                value: value.into(),
                reason: "unknown state backend; expected jobmanager, filesystem, rocksdb, \
                         hashmap, memory, fs or one of our factory class names"
                    .into(),
            })
        }
    })
}

fn parse_num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| Error::Config {
        key: key.into(),
        value: value.into(),
        reason: "not a valid non-negative number".into(),
    })
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Config {
            key: key.into(),
            value: value.into(),
            reason: "expected true or false".into(),
        }),
    }
}

/// Parses a Flink `MemorySize`: a number with an optional unit
/// (b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib; binary multiples, as Flink).
pub fn parse_memory_size(key: &str, value: &str) -> Result<u64> {
    let err = |reason: &str| Error::Config {
        key: key.into(),
        value: value.into(),
        reason: reason.into(),
    };
    let text = value.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits_end);
    let num: u64 = num
        .parse()
        .map_err(|_| err("expected a size such as 5mb"))?;
    let shift = match unit.trim() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" | "kibibytes" => 10,
        "m" | "mb" | "mib" | "mebibytes" => 20,
        "g" | "gb" | "gib" | "gibibytes" => 30,
        "t" | "tb" | "tib" | "tebibytes" => 40,
        _ => return Err(err("unknown unit; use b, kb, mb, gb or tb")),
    };
    num.checked_mul(1u64 << shift)
        .ok_or_else(|| err("the size overflows 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_memory_size("k", "5mb").unwrap(), 5 << 20);
        assert_eq!(parse_memory_size("k", "5 MiB").unwrap(), 5 << 20);
        assert_eq!(parse_memory_size("k", "1024").unwrap(), 1024);
        assert!(parse_memory_size("k", "5 parsecs").is_err());
        assert!(parse_memory_size("k", "").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            CheckpointUrl::parse("file:///tmp/x").unwrap().local_path(),
            Some(Path::new("/tmp/x"))
        );
        assert_eq!(
            CheckpointUrl::parse("file:/tmp/x").unwrap().local_path(),
            Some(Path::new("/tmp/x"))
        );
        assert!(CheckpointUrl::parse("file://host/tmp").is_err());
        assert!(CheckpointUrl::parse("ftp://host/x")
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(CheckpointUrl::parse("relative/dir").is_err());
        assert!(CheckpointUrl::parse("file:///a/../b").is_err());
    }

    #[test]
    fn s3_urls() {
        let target = |u: &str| CheckpointUrl::parse(u).map(|u| u.target().clone());
        let s3 = |bucket: &str, prefix: &str| UrlTarget::S3 {
            bucket: bucket.into(),
            prefix: prefix.into(),
        };
        assert_eq!(target("s3://my-bucket/a/b/"), Ok(s3("my-bucket", "a/b")));
        assert_eq!(target("s3a://my.bucket"), Ok(s3("my.bucket", "")));
        assert_eq!(target("S3://bkt/ckpt"), Ok(s3("bkt", "ckpt")));
        assert_eq!(
            CheckpointUrl::parse("s3://bkt/x").unwrap().local_path(),
            None
        );
        assert!(target("s3://Upper/x").unwrap_err().contains("bucket name"));
        assert!(target("s3://b/x").unwrap_err().contains("bucket name"));
        assert!(target("s3:bucket/x")
            .unwrap_err()
            .contains("s3://bucket/prefix"));
        assert!(target("s3://bkt/a/../b").unwrap_err().contains("'..'"));
        assert!(target("s3://bkt/a//b").unwrap_err().contains("empty"));
        assert!(target("s3://bkt/a?x=1").is_err());
    }

    #[test]
    fn hdfs_urls() {
        let target = |u: &str| CheckpointUrl::parse(u).map(|u| u.target().clone());
        assert_eq!(
            target("hdfs://nn.example:8020/flink/ckpt/"),
            Ok(UrlTarget::Hdfs {
                name_node: "hdfs://nn.example:8020".into(),
                path: "/flink/ckpt".into()
            })
        );
        assert_eq!(
            target("hdfs://nn/"),
            Ok(UrlTarget::Hdfs {
                name_node: "hdfs://nn".into(),
                path: "/".into()
            })
        );
        assert!(target("hdfs:///flink").unwrap_err().contains("name node"));
        assert!(target("hdfs://nn:port/x")
            .unwrap_err()
            .contains("name node"));
        assert!(target("hdfs://nn:8020/a/../b")
            .unwrap_err()
            .contains("'..'"));
    }

    #[test]
    fn s3_options() {
        let c = Config::from_pairs([
            ("state.backend.type", "rocksdb"),
            ("state.checkpoints.dir", "s3://bkt/ckpt"),
            ("s3.endpoint", "http://127.0.0.1:9000"),
            ("s3.access-key", "ak"),
            ("s3.secret-key", "sk"),
            ("s3.path.style.access", "true"),
            ("s3.upload.max.concurrent.uploads", "4"),
        ])
        .unwrap();
        assert_eq!(c.remote.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.remote.access_key.as_deref(), Some("ak"));
        assert_eq!(c.remote.secret_key.as_deref(), Some("sk"));
        assert_eq!(c.remote.path_style, Some(true));
        assert_eq!(c.remote.region, None);
        let err = Config::from_pairs([("s3.path.style.access", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("s3.path.style.access"), "{err}");
    }
}
