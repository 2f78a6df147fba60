//! The JNI bridge under the Flink classes in `java/` (`io.statebackend.internal.NativeBridge`).
//!
//! Like the C ABI, this layer only converts and guards: every native method runs inside
//! `run` or `access` (which catch panics), and a failure becomes a Java exception
//! carrying the core's message: `IllegalArgumentException` for misuse,
//! `IllegalStateException` for a closed handle, `io.statebackend.StateBackendPoisonedException`
//! for a backend that a panic left unusable (what `SB_POISONED` is in C), and
//! `io.statebackend.StateBackendException` for everything else. A Java exception raised
//! by a callback (a checkpoint stream's `write`, a restore stream's `read`) stays the
//! exception Java sees.
//!
//! Backends, iterators, pending snapshots and uploads are `long` ids from
//! generation-checked handle tables (`super::handles`, shared with the C ABI): a
//! closed or forged id fails to resolve.
//!
//! Hot path: one call per state access, no Java allocation, no JNI call back into the
//! JVM. Each Java thread's accessor registers a pair of direct `ByteBuffer`s once
//! (`bind`, again after it grew one): the backend keeps their addresses and a global
//! reference to each, and Java passes the pair's channel id and plain ints. Java
//! writes the fields of an access one after another into the input buffer (`key ‖
//! namespace ‖ user key ‖ value`, as the call needs) and passes their lengths. Results
//! go into the output buffer; calls return the result's length, [`ABSENT`] when there
//! is none, or `-(needed) - 2` when the output buffer is too small (Java grows it and
//! calls again). These calls enter the `jni` crate's environment wrapper only to throw
//! (see `access`).
//!
//! The files follow the C ABI's (`src/ffi/c/`): `backend` (open, close, states,
//! registered buffers), `keyed` (state accesses), `iter` (keys and the entries of a
//! canonical savepoint), `snapshot` (full and incremental snapshots), and `metrics`
//! (what Flink's gauges read, from a metric reporter's thread), with `args`
//! (argument conversion) and `streams` (Java streams as the core's readers and
//! writers). There is no `operator`: Flink keeps operator state on the Java side.
//! tests/jni_signatures.rs checks the `native` declarations of NativeBridge.java
//! against the functions here.

mod args;
mod backend;
mod iter;
mod keyed;
mod metrics;
mod snapshot;
mod streams;

use super::handles::Unusable;
use crate::error::Error;
use ::jni::errors::ErrorPolicy;
use ::jni::{Env, EnvUnowned};
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard};

/// Returned by reads when there is no entry.
pub const ABSENT: ::jni::sys::jint = -1;

/// Why a native method failed.
#[derive(Debug)]
enum Failure {
    Core(Error),
    Jni(::jni::errors::Error),
    /// The handle is closed (the message says what).
    Closed(&'static str),
    /// A panic left the object (named) in an unknown state.
    Poisoned(&'static str),
    Argument(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Core(e) => write!(f, "{e}"),
            Failure::Jni(e) => write!(f, "JNI: {e}"),
            Failure::Closed(what) => write!(f, "{what}"),
            Failure::Poisoned(what) => write!(
                f,
                "{what} is unusable after an earlier native panic; close it and restore from a checkpoint"
            ),
            Failure::Argument(msg) => write!(f, "invalid argument: {msg}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<::jni::errors::Error> for Failure {
    fn from(e: ::jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

/// Why a handle cannot be used: `closed` is the message for a closed one, `what`
/// names the object.
#[cold]
fn unusable(u: Unusable, closed: &'static str, what: &'static str) -> Failure {
    match u {
        Unusable::Closed => Failure::Closed(closed),
        Unusable::Poisoned => Failure::Poisoned(what),
    }
}

const ILLEGAL_ARGUMENT: &str = "java/lang/IllegalArgumentException";
const ILLEGAL_STATE: &str = "java/lang/IllegalStateException";
const BACKEND_EXCEPTION: &str = "io/statebackend/StateBackendException";
const POISONED_EXCEPTION: &str = "io/statebackend/StateBackendPoisonedException";

impl Failure {
    fn exception_class(&self) -> &'static str {
        match self {
            // No wildcard: a new kind of core error must be given its exception here.
            Failure::Core(e) => match e {
                Error::InvalidArgument(_)
                | Error::Config { .. }
                | Error::State(_)
                | Error::KeyGroupOutOfRange { .. } => ILLEGAL_ARGUMENT,
                Error::Closed(_) => ILLEGAL_STATE,
                Error::Poisoned(_) => POISONED_EXCEPTION,
                Error::StateTooLarge { .. }
                | Error::Corrupted { .. }
                | Error::Restore(_)
                | Error::Io { .. }
                | Error::RocksDb(_) => BACKEND_EXCEPTION,
            },
            Failure::Argument(_) => ILLEGAL_ARGUMENT,
            Failure::Closed(_) => ILLEGAL_STATE,
            Failure::Poisoned(_) => POISONED_EXCEPTION,
            Failure::Jni(_) => BACKEND_EXCEPTION,
        }
    }
}

/// Throws the Java exception for a failure or a panic, unless one is already pending
/// (a Java callback threw: that exception is the one to see).
struct ThrowJava;

fn throw(env: &mut Env<'_>, class: &str, msg: String) -> ::jni::errors::Result<()> {
    if env.exception_check() {
        return Ok(());
    }
    env.throw_new(
        ::jni::strings::JNIString::new(class),
        ::jni::strings::JNIString::new(msg),
    )
}

impl<T: Default> ErrorPolicy<T, Failure> for ThrowJava {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        err: Failure,
    ) -> ::jni::errors::Result<T> {
        throw(env, err.exception_class(), err.to_string())?;
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        payload: Box<dyn std::any::Any + Send + 'static>,
    ) -> ::jni::errors::Result<T> {
        let msg = crate::error::panic_message(payload.as_ref());
        throw(env, BACKEND_EXCEPTION, format!("native panic: {msg}"))?;
        Ok(T::default())
    }
}

type Res<T> = Result<T, Failure>;

/// Runs one native method body: panics are caught, failures thrown as Java exceptions.
fn run<'l, T: Default>(env: &mut EnvUnowned<'l>, body: impl FnOnce(&mut Env<'l>) -> Res<T>) -> T {
    env.with_env(body).resolve::<ThrowJava>()
}

/// Runs the body of a state access, which needs no JNI environment: as [`run`], but
/// the `jni` crate's wrapper (thread-attachment bookkeeping and exception checks,
/// about 55 ns a call, against 7 ns for the bare JNI transition) is only entered to
/// throw.
#[inline(always)]
fn access<'l, T: Default>(env: &mut EnvUnowned<'l>, body: impl FnOnce() -> Res<T>) -> T {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(failure)) => throw_failure(env, failure),
        Err(payload) => throw_panic(env, payload),
    }
}

#[cold]
#[inline(never)]
fn throw_failure<'l, T: Default>(env: &mut EnvUnowned<'l>, failure: Failure) -> T {
    run(env, |_| Err(failure))
}

#[cold]
#[inline(never)]
fn throw_panic<'l, T: Default>(
    env: &mut EnvUnowned<'l>,
    payload: Box<dyn std::any::Any + Send + 'static>,
) -> T {
    // Re-raised inside `run`, whose policy turns it into the Java exception.
    run(env, |_| std::panic::resume_unwind(payload))
}

/// Locks an object that a handle table hands out shared.
fn lock<'a, T>(m: &'a Mutex<T>, what: &'static str) -> Res<MutexGuard<'a, T>> {
    // A panic under the lock may have left the object half-updated: refuse to use it.
    m.lock().map_err(|_| Failure::Poisoned(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_java_exceptions() {
        assert_eq!(
            Failure::Core(Error::invalid("x")).exception_class(),
            ILLEGAL_ARGUMENT
        );
        assert_eq!(
            Failure::Closed("the state backend is closed").exception_class(),
            ILLEGAL_STATE
        );
        assert_eq!(
            unusable(Unusable::Poisoned, "closed", "the state backend").exception_class(),
            POISONED_EXCEPTION
        );
        assert_eq!(
            Failure::Core(Error::Poisoned("x".into())).exception_class(),
            POISONED_EXCEPTION
        );
        assert_eq!(
            Failure::Core(Error::Restore("x".into())).exception_class(),
            BACKEND_EXCEPTION
        );
    }
}
