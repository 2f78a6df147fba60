//! One error type for the whole core. The C and JNI layers map its variants to a
//! status code or a Java exception; the message is always meant for a human.

use std::path::PathBuf;

/// A specialised `Result` for this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration key has a value we cannot use.
    #[error("invalid configuration: {key} = '{value}': {reason}")]
    Config {
        key: String,
        value: String,
        reason: String,
    },

    /// A caller passed an argument that breaks the API contract.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A state name is unknown, or registered again with another kind.
    #[error("state error: {0}")]
    State(String),

    /// A key group outside the range this backend instance owns.
    #[error("key group {key_group} is outside this backend's key-group range {range}")]
    KeyGroupOutOfRange {
        key_group: u32,
        range: crate::keygroup::KeyGroupRange,
    },

    /// The memory backend refuses a snapshot whose state is over the configured limit.
    #[error(
        "checkpoint {checkpoint_id} declined: state '{state}' is {size} bytes, over the memory backend's limit of {limit} bytes per state (raise state.backend.native.memory.max-state-size or use the fs/rocksdb backend)"
    )]
    StateTooLarge {
        checkpoint_id: u64,
        state: String,
        size: u64,
        limit: u64,
    },

    /// A snapshot's bytes are not what was written: checksum, framing or truncation.
    #[error("corrupted snapshot {file} at offset {offset}: {reason}")]
    Corrupted {
        file: String,
        offset: u64,
        reason: String,
    },

    /// A snapshot cannot be restored into this backend (version, max parallelism, ...).
    #[error("cannot restore: {0}")]
    Restore(String),

    /// An I/O error, with the path it happened on.
    #[error("I/O error on {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The RocksDB engine reported an error.
    #[error("RocksDB: {0}")]
    RocksDb(String),

    /// The backend was closed, or an object outlived it.
    #[error("closed: {0}")]
    Closed(String),

    /// A panic (a bug) left the backend in an unknown state: it refuses further
    /// work. Close it and restore from the last checkpoint.
    #[error("unusable after a panic: {0}")]
    Poisoned(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub(crate) fn corrupted(file: &str, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            file: file.to_string(),
            offset,
            reason: reason.into(),
        }
    }
}

impl From<rocksdb::Error> for Error {
    fn from(e: rocksdb::Error) -> Self {
        Error::RocksDb(e.into_string())
    }
}

/// The message of a caught panic's payload (a `&str` or a `String`, as `panic!`
/// makes them).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
