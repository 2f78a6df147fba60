//! # libstatebackend
//!
//! Native state backends for stream processing — Memory, Fs and RocksDB, after
//! Apache Flink's classic design — with one Rust core used from Rust, from C/C++
//! (`include/statebackend.h`) and from Flink (the Java classes in `java/`).
//!
//! A [`StateBackend`] instance owns a range of key groups. States are registered by
//! name and kind ([`StateKind`]); keys, namespaces, user keys and values are opaque
//! bytes. Snapshots have two phases: [`StateBackend::snapshot`] (synchronous, O(1)
//! in the state size) and [`PendingSnapshot::write`] (asynchronous, any thread).
//! [`StateBackend::restore`] rebuilds a backend from any number of snapshots,
//! keeping only the key groups it owns.
//!
//! ```
//! use statebackend::{Config, SnapshotHandle, StateBackend, StateKind};
//!
//! let mut backend = StateBackend::open(Config::memory())?;
//! let count = backend.register_state("count", StateKind::Value, b"")?;
//! let kg = statebackend::keygroup::key_group_for_hash(42, 128)?;
//! backend.value_put(count, kg, b"user-42", b"", &7u64.to_le_bytes())?;
//!
//! let snapshot = backend.snapshot(1)?.write()?; // inline bytes for the memory backend
//! let restored = StateBackend::restore(Config::memory(), &[snapshot.handle])?;
//! let mut out = Vec::new();
//! assert!(restored.value_get(count, kg, b"user-42", b"", &mut out)?);
//! assert_eq!(out, 7u64.to_le_bytes());
//! # Ok::<(), statebackend::Error>(())
//! ```

pub mod backend;
pub mod checkpoint_storage;
pub mod codec;
pub mod config;
pub mod error;
pub mod ffi;
pub mod iter;
pub mod keygroup;
pub mod metrics;
pub mod migration;
pub mod operator;
pub mod snapshot;
pub mod state;
pub mod store;

pub use backend::StateBackend;
pub use checkpoint_storage::RemoteOptions;
pub use config::{BackendKind, CheckpointUrl, Config, UrlTarget};
pub use error::{Error, Result};
pub use iter::{Entry, EntryValue, KeyEntry, SortedMap};
pub use keygroup::KeyGroupRange;
pub use metrics::{BackendMetrics, StateMetrics, WriteCacheMetrics};
pub use migration::{MigrationEntry, MigrationStats};
pub use operator::Distribution;
pub use snapshot::{CompletedSnapshot, IncrementalUpload, PendingSnapshot, SnapshotHandle};
pub use state::{StateId, StateInfo, StateKind};

/// The library version (the crate version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
