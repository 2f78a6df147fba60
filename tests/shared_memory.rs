//! RocksDB backends sharing one memory budget (`store::rocks::memory::SharedMemory`,
//! what the Flink integration builds from a slot's managed memory): both work on state
//! far larger than the budget, the write-cache part is split between them and given
//! back when one closes, and RocksDB's block cache stays within its part.

mod common;

use common::{config, dump, kg_of};
use statebackend::store::rocks::memory::SharedMemory;
use statebackend::{BackendKind, StateBackend, StateKind};

const MIB: usize = 1 << 20;

#[test]
fn two_backends_share_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SharedMemory::new(32 * MIB, 0.5, 0.5).unwrap();
    let open = |name: &str| {
        let mut c = config(BackendKind::RocksDb, &dir.path().join(name), 128, 0, 1);
        c.memory = Some(memory.clone());
        StateBackend::open(c).unwrap()
    };
    let mut a = open("a");
    assert_eq!(memory.members(), 1);
    let mut b = open("b");
    assert_eq!(memory.members(), 2);

    // 64 MiB of incompressible values in each: four times the whole budget.
    let value = |k: u32, salt: u8| -> Vec<u8> {
        let mut x = u64::from(k) * 0x9e37_79b9_7f4a_7c15 + u64::from(salt);
        (0..1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    let keys: u32 = 64 * 1024;
    for (backend, salt) in [(&mut a, 1u8), (&mut b, 2u8)] {
        let s = backend.register_state("v", StateKind::Value, b"").unwrap();
        for k in 0..keys {
            backend
                .value_put(
                    s,
                    kg_of(k as i32, 128),
                    &k.to_be_bytes(),
                    b"",
                    &value(k, salt),
                )
                .unwrap();
        }
    }
    assert!(
        memory.block_cache_usage() <= memory.rocksdb_bytes(),
        "block cache {} over its part {}",
        memory.block_cache_usage(),
        memory.rocksdb_bytes()
    );
    for (backend, salt) in [(&a, 1u8), (&b, 2u8)] {
        let s = backend.state("v").unwrap().id;
        let mut out = Vec::new();
        for k in (0..keys).step_by(97) {
            assert!(backend
                .value_get(s, kg_of(k as i32, 128), &k.to_be_bytes(), b"", &mut out)
                .unwrap());
            assert_eq!(out, value(k, salt), "key {k}");
        }
    }
    let entries = dump(std::slice::from_ref(&b)).len();
    assert_eq!(entries, keys as usize);
    drop(a);
    assert_eq!(memory.members(), 1);
    drop(b);
    assert_eq!(memory.members(), 0);
}
