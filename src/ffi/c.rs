//! The C ABI (`include/statebackend.h`, generated from this module by build.rs).
//!
//! This layer converts C arguments into core calls, maps core errors to one status
//! enum and guards against misuse. Every rule about state lives in the core.
//!
//! Conventions shared by every function (docs/c-api.md has the long form):
//!
//! - Every function returns an `sb_status`; results go to out-parameters. On
//!   failure a human-readable message is kept per thread (`sb_last_error_message`).
//! - No panic crosses the boundary: each entry point catches panics (`SB_PANIC`).
//! - Objects the caller must close are handles: small structs holding a 64-bit id
//!   that is looked up in a table. A closed, freed or never-issued handle yields
//!   `SB_INVALID_HANDLE`, never undefined behaviour. Closing the zero handle is a
//!   no-op; closing twice is `SB_INVALID_HANDLE`.
//! - Input bytes are `sb_slice` values (pointer + length); a null pointer is fine
//!   with length 0 and `SB_NULL_POINTER` otherwise. Strings are NUL-terminated UTF-8.
//! - Outputs are copied into caller buffers with the required-size protocol, or are
//!   borrowed views valid until a documented point (iterator items, snapshot bytes).
//!
//! The functions are `unsafe extern "C"`: their contract is the C one (pointers
//! valid for the stated lengths), spelled out once here and in docs/c-api.md
//! rather than in a `# Safety` section per function.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use crate::error::Error;
use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every function of this library.
///
/// `SB_OK` and `SB_NOT_FOUND` are not errors; every other status leaves a message
/// for `sb_last_error_message` on the calling thread.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sb_status {
    /// Success.
    SB_OK = 0,
    /// Success, but there is nothing: an absent value, list or map entry, an unknown
    /// state name, or the end of an iteration. Sets no error message.
    SB_NOT_FOUND = 1,
    /// The caller's buffer is too small; the required size was stored in the
    /// length out-parameter and nothing was written.
    SB_BUFFER_TOO_SMALL = 2,
    /// A required pointer was null (or a byte pointer was null with a non-zero length).
    SB_NULL_POINTER = 3,
    /// An argument breaks the API contract: an unknown enum value, invalid UTF-8,
    /// a malformed encoded list, an oversized field, a re-entrant call ...
    SB_INVALID_ARGUMENT = 4,
    /// The handle is zero, closed, freed or was never issued; or an iterator's
    /// backend has been closed.
    SB_INVALID_HANDLE = 5,
    /// A configuration key or value cannot be used (includes unsupported URL schemes).
    SB_CONFIG_ERROR = 6,
    /// A state is unknown, or is used as (or registered again as) another kind.
    SB_STATE_ERROR = 7,
    /// The key group lies outside the backend's key-group range.
    SB_KEY_GROUP_OUT_OF_RANGE = 8,
    /// The memory backend declined a snapshot: a state is over `max_state_size`.
    SB_STATE_TOO_LARGE = 9,
    /// Snapshot bytes failed their checksum, framing or length checks.
    SB_CORRUPTED = 10,
    /// A snapshot cannot be restored into this configuration.
    SB_RESTORE_ERROR = 11,
    /// An I/O error (the message names the path).
    SB_IO_ERROR = 12,
    /// The RocksDB engine reported an error.
    SB_ROCKSDB_ERROR = 13,
    /// The caller's callback (e.g. a reduce function) returned non-zero.
    SB_CALLBACK_FAILED = 14,
    /// A panic in an earlier call left this backend in an unknown state; close it.
    SB_POISONED = 15,
    /// A bug: the library panicked during this call. The call had no effect beyond
    /// what the message says; the process is intact.
    SB_PANIC = 16,
}

pub use sb_backend_kind::*;
pub use sb_distribution::*;
pub use sb_snapshot_kind::*;
pub use sb_state_kind::*;
pub use sb_status::*;

/// Which backend (`sb_config.backend`, `sb_backend_info.backend`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sb_backend_kind {
    /// Working state in memory; snapshots returned inline as bytes.
    SB_BACKEND_MEMORY = 0,
    /// Working state in memory; snapshots written under a `file://` URL.
    SB_BACKEND_FS = 1,
    /// Working state in embedded RocksDB; snapshots written under a `file://` URL.
    SB_BACKEND_ROCKSDB = 2,
}

/// The kind of a keyed state (`sb_register_state`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sb_state_kind {
    SB_STATE_VALUE = 0,
    SB_STATE_LIST = 1,
    SB_STATE_MAP = 2,
    /// Byte strings per key group in byte order (timers): `sb_set_add`,
    /// `sb_set_remove`, `sb_set_range`.
    SB_STATE_SORTED_SET = 3,
}

/// How an operator list state is redistributed on restore.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sb_distribution {
    /// Flink's `getListState`: elements of all old instances split evenly.
    SB_DISTRIBUTION_EVEN_SPLIT = 0,
    /// Flink's `getUnionListState`: every new instance gets all elements.
    SB_DISTRIBUTION_UNION = 1,
}

/// What a snapshot is: inline bytes (memory backend) or a manifest file path.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum sb_snapshot_kind {
    SB_SNAPSHOT_INLINE = 0,
    SB_SNAPSHOT_MANIFEST = 1,
}

// `from_u32` and `name` of the enums above, generated by build.rs from them.
include!(concat!(env!("OUT_DIR"), "/c_enums.rs"));

// The core's kinds and the C enums' values: exhaustive both ways, so a new kind in
// the core does not compile until C has a value for it.
impl From<crate::BackendKind> for sb_backend_kind {
    fn from(kind: crate::BackendKind) -> Self {
        match kind {
            crate::BackendKind::Memory => SB_BACKEND_MEMORY,
            crate::BackendKind::Fs => SB_BACKEND_FS,
            crate::BackendKind::RocksDb => SB_BACKEND_ROCKSDB,
        }
    }
}

impl From<sb_backend_kind> for crate::BackendKind {
    fn from(kind: sb_backend_kind) -> Self {
        match kind {
            SB_BACKEND_MEMORY => crate::BackendKind::Memory,
            SB_BACKEND_FS => crate::BackendKind::Fs,
            SB_BACKEND_ROCKSDB => crate::BackendKind::RocksDb,
        }
    }
}

impl From<crate::StateKind> for sb_state_kind {
    fn from(kind: crate::StateKind) -> Self {
        match kind {
            crate::StateKind::Value => SB_STATE_VALUE,
            crate::StateKind::List => SB_STATE_LIST,
            crate::StateKind::Map => SB_STATE_MAP,
            crate::StateKind::SortedSet => SB_STATE_SORTED_SET,
        }
    }
}

impl From<sb_state_kind> for crate::StateKind {
    fn from(kind: sb_state_kind) -> Self {
        match kind {
            SB_STATE_VALUE => crate::StateKind::Value,
            SB_STATE_LIST => crate::StateKind::List,
            SB_STATE_MAP => crate::StateKind::Map,
            SB_STATE_SORTED_SET => crate::StateKind::SortedSet,
        }
    }
}

impl From<sb_distribution> for crate::Distribution {
    fn from(d: sb_distribution) -> Self {
        match d {
            SB_DISTRIBUTION_EVEN_SPLIT => crate::Distribution::EvenSplit,
            SB_DISTRIBUTION_UNION => crate::Distribution::Union,
        }
    }
}

/// Borrowed input bytes: `len` bytes at `data`. `data` may be null when `len` is 0
/// (an empty key or namespace is legal). The library never keeps the pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sb_slice {
    pub data: *const u8,
    pub len: usize,
}

impl sb_slice {
    const EMPTY: sb_slice = sb_slice {
        data: std::ptr::null(),
        len: 0,
    };

    fn of(bytes: &[u8]) -> sb_slice {
        sb_slice {
            data: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

// ---- errors and the panic boundary ------------------------------------------------

/// A failed call: its status and message.
pub(crate) struct Fail {
    status: sb_status,
    message: String,
}

impl Fail {
    pub(crate) fn new(status: sb_status, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
        }
    }
}

/// What an entry point's body evaluates to.
type Outcome = Result<sb_status, Fail>;

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        // No wildcard: a new kind of error must be given its status here.
        let status = match &e {
            Error::Config { .. } => SB_CONFIG_ERROR,
            Error::InvalidArgument(_) => SB_INVALID_ARGUMENT,
            Error::State(_) => SB_STATE_ERROR,
            Error::KeyGroupOutOfRange { .. } => SB_KEY_GROUP_OUT_OF_RANGE,
            Error::StateTooLarge { .. } => SB_STATE_TOO_LARGE,
            Error::Corrupted { .. } => SB_CORRUPTED,
            Error::Restore(_) => SB_RESTORE_ERROR,
            Error::Io { .. } => SB_IO_ERROR,
            Error::RocksDb(_) => SB_ROCKSDB_ERROR,
            Error::Closed(_) => SB_INVALID_HANDLE,
            Error::Poisoned(_) => SB_POISONED,
        };
        Fail::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(function: &str, message: &str) {
    LAST_ERROR.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.push_str(function);
        m.push_str(": ");
        // A NUL inside the message would cut the C string short.
        m.extend(message.chars().map(|c| if c == '\0' { ' ' } else { c }));
    });
}

/// Turns the outcome of an entry point's body (or its panic) into a status.
fn finish(function: &str, result: std::thread::Result<Outcome>) -> sb_status {
    match result {
        Ok(Ok(status)) => status,
        Ok(Err(fail)) => {
            if fail.status != SB_NOT_FOUND {
                set_last_error(function, &fail.message);
            }
            fail.status
        }
        Err(payload) => {
            let what = crate::error::panic_message(payload.as_ref());
            set_last_error(function, &format!("internal panic: {what}"));
            SB_PANIC
        }
    }
}

/// Runs an entry point's body (a block evaluating to `Outcome`) behind the panic
/// boundary; `$name` prefixes the error message.
macro_rules! ffi_boundary {
    ($name:literal, $body:block) => {
        $crate::ffi::c::finish(
            $name,
            ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
                || -> $crate::ffi::c::Outcome { $body },
            )),
        )
    };
}

// ---- argument conversion --------------------------------------------------------------

/// Fails with `SB_NULL_POINTER` when `p` is null.
fn non_null<T>(p: *const T, what: &str) -> Result<(), Fail> {
    if p.is_null() {
        Err(Fail::new(SB_NULL_POINTER, format!("{what} is null")))
    } else {
        Ok(())
    }
}

/// Writes `value` through an out-parameter, which must not be null.
unsafe fn put<T>(p: *mut T, value: T, what: &str) -> Result<(), Fail> {
    non_null(p, what)?;
    p.write(value);
    Ok(())
}

/// The bytes of a slice.
unsafe fn bytes<'a>(s: sb_slice, what: &str) -> Result<&'a [u8], Fail> {
    if s.len == 0 {
        return Ok(&[]);
    }
    if s.data.is_null() {
        return Err(Fail::new(
            SB_NULL_POINTER,
            format!("{what}: null pointer with length {}", s.len),
        ));
    }
    if s.len > isize::MAX as usize {
        return Err(Fail::new(
            SB_INVALID_ARGUMENT,
            format!("{what}: length {} is impossible", s.len),
        ));
    }
    Ok(std::slice::from_raw_parts(s.data, s.len))
}

/// An array of `n` slices.
unsafe fn slices<'a>(p: *const sb_slice, n: usize, what: &str) -> Result<Vec<&'a [u8]>, Fail> {
    if n == 0 {
        return Ok(Vec::new());
    }
    non_null(p, what)?;
    if n > isize::MAX as usize / std::mem::size_of::<sb_slice>() {
        return Err(Fail::new(
            SB_INVALID_ARGUMENT,
            format!("{what}: count {n} is impossible"),
        ));
    }
    std::slice::from_raw_parts(p, n)
        .iter()
        .enumerate()
        .map(|(i, s)| bytes(*s, &format!("{what}[{i}]")))
        .collect()
}

/// A NUL-terminated UTF-8 string.
unsafe fn string<'a>(p: *const c_char, what: &str) -> Result<&'a str, Fail> {
    non_null(p, what)?;
    CStr::from_ptr(p)
        .to_str()
        .map_err(|e| Fail::new(SB_INVALID_ARGUMENT, format!("{what} is not UTF-8: {e}")))
}

/// An optional NUL-terminated UTF-8 string (null: none).
unsafe fn opt_string<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Fail> {
    if p.is_null() {
        Ok(None)
    } else {
        string(p, what).map(Some)
    }
}

/// The required-size protocol: stores `src.len()` in `*len`, then copies `src` into
/// `buf` if `cap` is enough, else fails with `SB_BUFFER_TOO_SMALL`.
unsafe fn copy_out(src: &[u8], buf: *mut u8, cap: usize, len: *mut usize, what: &str) -> Outcome {
    put(len, src.len(), "the length out-parameter")?;
    if src.len() > cap {
        return Err(Fail::new(
            SB_BUFFER_TOO_SMALL,
            format!("{what} needs {} bytes, the buffer has {cap}", src.len()),
        ));
    }
    if !src.is_empty() {
        non_null(buf, "buf")?;
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
    }
    Ok(SB_OK)
}

/// The required-size protocol for a string: `*len` is the size including the NUL.
unsafe fn copy_out_str(
    src: &[u8],
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
    what: &str,
) -> Outcome {
    put(len, src.len() + 1, "the length out-parameter")?;
    if src.len() + 1 > cap {
        return Err(Fail::new(
            SB_BUFFER_TOO_SMALL,
            format!("{what} needs {} bytes, the buffer has {cap}", src.len() + 1),
        ));
    }
    non_null(buf, "buf")?;
    let buf = buf.cast::<u8>();
    std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
    buf.add(src.len()).write(0);
    Ok(SB_OK)
}

fn state_kind(kind: u32) -> Result<crate::StateKind, Fail> {
    sb_state_kind::from_u32(kind)
        .map(crate::StateKind::from)
        .ok_or_else(|| Fail::new(SB_INVALID_ARGUMENT, format!("unknown state kind {kind}")))
}

fn not_found() -> Outcome {
    Err(Fail::new(SB_NOT_FOUND, ""))
}

// Explicit paths: cbindgen reads this file alone and resolves them the same way.
#[path = "c/backend.rs"]
mod backend;
#[path = "c/iter.rs"]
mod iter;
#[path = "c/keyed.rs"]
mod keyed;
#[path = "c/keygroup.rs"]
mod keygroup;
#[path = "c/memory.rs"]
mod memory;
#[path = "c/operator.rs"]
mod operator;
#[path = "c/snapshot.rs"]
mod snapshot;

pub use backend::*;
pub use iter::*;
pub use keyed::*;
pub use keygroup::*;
pub use memory::*;
pub use operator::*;
pub use snapshot::*;

// ---- library-wide functions ------------------------------------------------------------

/// The library version, e.g. "0.1.0": a static NUL-terminated string (never free it).
#[no_mangle]
pub extern "C" fn sb_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a status, e.g. "SB_NOT_FOUND": a static NUL-terminated string
/// (never free it); "SB_UNKNOWN_STATUS" for a value outside the enum.
#[no_mangle]
pub extern "C" fn sb_status_name(status: u32) -> *const c_char {
    sb_status::from_u32(status)
        .map_or(c"SB_UNKNOWN_STATUS", sb_status::name)
        .as_ptr()
}

/// Copies the message of the last failed call on this thread (an empty string if
/// none), NUL-terminated, into `buf` of `cap` bytes. `*needed` receives the size
/// including the NUL; if `cap` is smaller, returns `SB_BUFFER_TOO_SMALL` and writes
/// nothing (`buf` may then be null). This call never changes the stored message;
/// successful calls do not clear it.
#[no_mangle]
pub unsafe extern "C" fn sb_last_error_message(
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> sb_status {
    let result = catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|m| {
            let m = m.borrow();
            copy_out_str(m.as_bytes(), buf, cap, needed, "the message")
        })
    }));
    // Reporting about the report would overwrite the message the caller wants.
    match result {
        Ok(Ok(s)) => s,
        Ok(Err(fail)) => fail.status,
        Err(_) => SB_PANIC,
    }
}

/// Testing only: panics inside the boundary. With a live backend handle, panics
/// while holding that backend's lock, which poisons it.
#[doc(hidden)]
#[no_mangle]
pub extern "C" fn sb_debug_panic(backend: sb_backend) -> sb_status {
    ffi_boundary!("sb_debug_panic", {
        if backend.id != 0 {
            backend::with_backend(backend, |_| -> Outcome {
                panic!("sb_debug_panic called with a backend")
            })?;
        }
        panic!("sb_debug_panic called")
    })
}
