//! Metrics: what Flink's gauges read (`io.statebackend.internal.NativeMetrics`).
//!
//! Gauges are read on a metric reporter's thread, while the task thread uses the
//! backend: `metrics` takes the backend only if no call holds it, and returns null
//! instead of waiting, as it does for a closed or poisoned backend; Java then keeps
//! the last reading. It never throws for those.

use super::args::{long_array, string_array};
use super::backend::{try_with_backend, with_backend};
use super::{run, Failure};
use ::jni::objects::{JClass, JLongArray, JObjectArray, JString};
use ::jni::sys::{jboolean, jlong};
use ::jni::EnvUnowned;

/// `long[] metrics(long)`: one reading of the backend's metrics in the layout of
/// `BackendMetrics::encode` (the write cache's counters, the enabled RocksDB
/// statistics counters, then per state its entries, bytes and enabled RocksDB
/// properties; -1 for what is not known), or null when the
/// backend is closed, poisoned or busy in another call.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_metrics<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JLongArray<'l> {
    run(&mut env, |env| {
        match try_with_backend(handle, |c| c.backend.metrics().encode()) {
            Ok(Some(values)) => long_array(env, &values),
            Ok(None) | Err(Failure::Closed(_) | Failure::Poisoned(_)) => Ok(JLongArray::default()),
            Err(e) => Err(e),
        }
    })
}

/// `String[] metricProperties(long)`: the RocksDB properties `metrics` reads per
/// state (`rocksdb.estimate-num-keys`, …), as enabled by
/// `state.backend.rocksdb.metrics.*`; empty for the heap backends.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_metricProperties<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JObjectArray<'l, JString<'l>> {
    run(&mut env, |env| {
        let names = with_backend(handle, |c| Ok(c.backend.metric_options().properties))?;
        string_array(env, &names)
    })
}

/// `String[] metricStatistics(long)`: the RocksDB statistics counters `metrics`
/// reads for the whole DB, by Flink's metric names (`rocksdb.block_cache_hit`, …), as
/// enabled by `state.backend.rocksdb.metrics.*`; empty for the heap backends.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_metricStatistics<'l>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> JObjectArray<'l, JString<'l>> {
    run(&mut env, |env| {
        let names: Vec<String> = with_backend(handle, |c| {
            Ok(c.backend
                .metric_options()
                .statistics
                .iter()
                .map(|s| s.to_string())
                .collect())
        })?;
        string_array(env, &names)
    })
}

/// `boolean metricsColumnFamilyAsVariable(long)`:
/// `state.backend.rocksdb.metrics.column-family-as-variable`.
#[unsafe(no_mangle)]
pub extern "system" fn Java_io_statebackend_internal_NativeBridge_metricsColumnFamilyAsVariable<
    'l,
>(
    mut env: EnvUnowned<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jboolean {
    run(&mut env, |_| {
        with_backend(handle, |c| {
            Ok(c.backend.metric_options().column_family_as_variable)
        })
    })
}
