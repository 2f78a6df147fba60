//! The asynchronous phase runs on another thread while the task keeps writing; the
//! snapshot holds exactly the state of the synchronous phase.

mod common;

use common::{backends, config, dump};
use statebackend::{StateBackend, StateKind};

#[test]
fn writes_during_async_phase_do_not_leak_into_the_snapshot() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b =
            StateBackend::open(config(kind, dir.path(), 128, 0, 1).with_max_state_size(1 << 30))
                .unwrap();
        let v = b.register_state("v", StateKind::Value, b"").unwrap();
        let l = b.register_state("l", StateKind::List, b"").unwrap();
        let m = b.register_state("m", StateKind::Map, b"").unwrap();
        let n = 20_000i32;
        for k in 0..n {
            let kg = common::kg_of(k, 128);
            let key = k.to_be_bytes();
            b.value_put(v, kg, &key, b"", &k.to_le_bytes()).unwrap();
            b.list_add(l, kg, &key, b"", b"first").unwrap();
            b.map_put(m, kg, &key, b"w", b"a", b"1").unwrap();
        }
        let expected = dump(std::slice::from_ref(&b));

        let pending = b.snapshot(1).unwrap();
        let writer = std::thread::spawn(move || pending.write().unwrap());
        // Overwrite, delete, append and insert while the snapshot is being written.
        for round in 0..3 {
            for k in 0..n {
                let kg = common::kg_of(k, 128);
                let key = k.to_be_bytes();
                match (k + round) % 4 {
                    0 => b.value_put(v, kg, &key, b"", b"changed").unwrap(),
                    1 => b.value_delete(v, kg, &key, b"").unwrap(),
                    2 => b.list_add(l, kg, &key, b"", b"later").unwrap(),
                    _ => b.map_put(m, kg, &key, b"w", b"b", b"2").unwrap(),
                }
                b.value_put(v, kg, &(k + n).to_be_bytes(), b"", b"new")
                    .unwrap();
            }
        }
        let done = writer.join().unwrap();
        assert_ne!(
            dump(std::slice::from_ref(&b)),
            expected,
            "{kind:?}: live state moved on"
        );

        let restored =
            StateBackend::restore(config(kind, dir.path(), 128, 0, 1), &[done.handle]).unwrap();
        assert_eq!(dump(&[restored]), expected, "{kind:?}");
    }
}

#[test]
fn two_snapshots_in_flight() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(kind, dir.path(), 8, 0, 1).with_retained_checkpoints(2);
        let mut b = StateBackend::open(cfg.clone()).unwrap();
        let v = b.register_state("v", StateKind::Value, b"").unwrap();
        b.value_put(v, 0, b"k", b"", b"one").unwrap();
        let first = b.snapshot(1).unwrap();
        let one = dump(std::slice::from_ref(&b));
        b.value_put(v, 0, b"k", b"", b"two").unwrap();
        let second = b.snapshot(2).unwrap();
        let two = dump(std::slice::from_ref(&b));
        b.value_put(v, 0, b"k", b"", b"three").unwrap();
        // Completed out of order.
        let h2 = second.write().unwrap().handle;
        let h1 = first.write().unwrap().handle;
        let r1 = StateBackend::restore(cfg.clone(), &[h1]).unwrap();
        let r2 = StateBackend::restore(cfg.clone(), &[h2]).unwrap();
        assert_eq!(dump(&[r1]), one);
        assert_eq!(dump(&[r2]), two);
    }
}
