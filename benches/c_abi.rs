//! The cost of the C ABI: the same value get and put through `include/statebackend.h`
//! (the `extern "C"` functions, called as C would) and through the Rust API, on the
//! memory and RocksDB backends. 100,000 preloaded 8-byte keys and values.
//!
//!     cargo bench --bench c_abi
//!
//! The C path adds a handle-table lookup, a lock, argument checks and a copy into
//! the caller's buffer; the ratio of the two medians is the cost of the ABI.

use criterion::{criterion_group, criterion_main, Criterion};
use statebackend::ffi::c::*;
use statebackend::keygroup::key_group_for_hash;
use statebackend::{BackendKind, Config, StateBackend, StateKind};
use std::ffi::CString;
use std::hint::black_box;

const KEYS: u64 = 100_000;
const MAX_PARALLELISM: u32 = 128;

fn kg(key: u64) -> u32 {
    key_group_for_hash((key ^ (key >> 32)) as i32, MAX_PARALLELISM).unwrap()
}

fn slice(b: &[u8]) -> sb_slice {
    sb_slice {
        data: b.as_ptr(),
        len: b.len(),
    }
}

fn c_abi(c: &mut Criterion) {
    for kind in [BackendKind::Memory, BackendKind::RocksDb] {
        let dir = tempfile::tempdir().unwrap();
        let url = CString::new(format!("file://{}", dir.path().display())).unwrap();
        let local = CString::new(format!("{}/local", dir.path().display())).unwrap();
        let name = kind.name();

        // Rust API.
        let config = match kind {
            BackendKind::RocksDb => Config::rocksdb(url.to_str().unwrap()).unwrap(),
            _ => Config::memory(),
        };
        let mut rust = StateBackend::open(
            config
                .with_local_dir(dir.path().join("local-rust"))
                .with_max_parallelism(MAX_PARALLELISM)
                .unwrap(),
        )
        .unwrap();
        let rs = rust.register_state("v", StateKind::Value, b"").unwrap();
        for k in 0..KEYS {
            let key = k.to_be_bytes();
            rust.value_put(rs, kg(k), &key, b"", &key).unwrap();
        }

        // C ABI.
        let mut b = sb_backend { id: 0 };
        let mut cs = 0u32;
        unsafe {
            let mut cfg = std::mem::zeroed::<sb_config>();
            assert_eq!(sb_config_default(&mut cfg), SB_OK);
            cfg.backend = match kind {
                BackendKind::RocksDb => sb_backend_kind::SB_BACKEND_ROCKSDB as u32,
                _ => sb_backend_kind::SB_BACKEND_MEMORY as u32,
            };
            cfg.checkpoint_url = url.as_ptr();
            cfg.local_dir = local.as_ptr();
            assert_eq!(sb_backend_open(&cfg, std::ptr::null(), 0, &mut b), SB_OK);
            let name = CString::new("v").unwrap();
            let status = sb_register_state(b, name.as_ptr(), 0, slice(b""), &mut cs);
            assert_eq!(status, SB_OK);
            for k in 0..KEYS {
                let key = k.to_be_bytes();
                let status = sb_value_put(b, cs, kg(k), slice(&key), slice(b""), slice(&key));
                assert_eq!(status, SB_OK);
            }
        }

        let mut next = 0u64;
        let mut step = || {
            next = (next + 7919) % KEYS;
            next
        };
        let mut out = Vec::with_capacity(64);
        c.bench_function(&format!("{name}/value_get/rust"), |bench| {
            bench.iter(|| {
                let k = step();
                let key = k.to_be_bytes();
                black_box(rust.value_get(rs, kg(k), &key, b"", &mut out).unwrap());
            })
        });
        c.bench_function(&format!("{name}/value_get/c_abi"), |bench| {
            let mut buf = [0u8; 64];
            let mut len = 0usize;
            bench.iter(|| {
                let k = step();
                let key = k.to_be_bytes();
                let status = unsafe {
                    sb_value_get(
                        b,
                        cs,
                        kg(k),
                        slice(&key),
                        slice(b""),
                        buf.as_mut_ptr(),
                        buf.len(),
                        &mut len,
                    )
                };
                black_box((status, len));
            })
        });
        c.bench_function(&format!("{name}/value_put/rust"), |bench| {
            bench.iter(|| {
                let k = step();
                let key = k.to_be_bytes();
                rust.value_put(rs, kg(k), &key, b"", &key).unwrap();
            })
        });
        c.bench_function(&format!("{name}/value_put/c_abi"), |bench| {
            bench.iter(|| {
                let k = step();
                let key = k.to_be_bytes();
                let status =
                    unsafe { sb_value_put(b, cs, kg(k), slice(&key), slice(b""), slice(&key)) };
                black_box(status);
            })
        });
        assert_eq!(sb_backend_close(b), SB_OK);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(2));
    targets = c_abi
}
criterion_main!(benches);
