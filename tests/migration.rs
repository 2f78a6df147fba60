//! State migration (`StateBackend::migrate_state`) on every backend: values, list
//! elements and map values rewritten, map user keys changed (including keys that swap
//! places), the result surviving a checkpoint and restore, and a failing or
//! misbehaving migration function reported as an error.

mod common;

use common::{backends, config, dump, kg_of, Dump, DumpValue};
use statebackend::{MigrationEntry, StateBackend, StateKind};

const KEYS: u32 = 3000;
const MAX_PARALLELISM: u32 = 128;

/// Writes value, list and map state for `KEYS` keys in two namespaces.
fn fill(b: &mut StateBackend) {
    let v = b.register_state("v", StateKind::Value, b"old").unwrap();
    let l = b.register_state("l", StateKind::List, b"old").unwrap();
    let m = b.register_state("m", StateKind::Map, b"old").unwrap();
    for k in 0..KEYS {
        let kg = kg_of(k as i32, MAX_PARALLELISM);
        let key = k.to_be_bytes();
        for ns in [&b"a"[..], b"b"] {
            b.value_put(v, kg, &key, ns, format!("v{k}").as_bytes())
                .unwrap();
            for i in 0..3u32 {
                b.list_add(l, kg, &key, ns, format!("e{}", k + i).as_bytes())
                    .unwrap();
                // User keys "xy" and "yx" of one map swap places under `swap`.
                for uk in [format!("{i}x"), format!("x{i}")] {
                    b.map_put(
                        m,
                        kg,
                        &key,
                        ns,
                        uk.as_bytes(),
                        format!("{k}/{uk}").as_bytes(),
                    )
                    .unwrap();
                }
            }
        }
    }
}

fn upper(bytes: &[u8]) -> Vec<u8> {
    let mut out = b"NEW:".to_vec();
    out.extend(bytes.to_ascii_uppercase());
    out
}

/// The user key with its two bytes swapped: "0x" <-> "x0".
fn swap(uk: &[u8]) -> Vec<u8> {
    uk.iter().rev().copied().collect()
}

/// Each list element of the list encoding (`varint(len) ‖ bytes`) through `f`.
fn map_list(encoded: &[u8], f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = encoded;
    while !rest.is_empty() {
        let (len, used) = statebackend::codec::get_varint(rest).unwrap();
        let element = &rest[used..used + len as usize];
        statebackend::codec::put_list_element(&mut out, &f(element));
        rest = &rest[used + len as usize..];
    }
    out
}

/// `before` with every value, list element and map value through `upper`, and map
/// user keys through `swap` when `keys` is set.
fn expected(before: &Dump, keys: bool) -> Dump {
    before
        .iter()
        .map(|(slot, v)| {
            let v = match v {
                DumpValue::Value(v) => DumpValue::Value(upper(v)),
                DumpValue::List(l) => DumpValue::List(l.iter().map(|e| upper(e)).collect()),
                DumpValue::Map(m) => DumpValue::Map(
                    m.iter()
                        .map(|(uk, v)| (if keys { swap(uk) } else { uk.clone() }, upper(v)))
                        .collect(),
                ),
            };
            (slot.clone(), v)
        })
        .collect()
}

fn migrate_all(b: &mut StateBackend, keys: bool) -> u64 {
    let mut entries = 0;
    for (name, kind) in [
        ("v", StateKind::Value),
        ("l", StateKind::List),
        ("m", StateKind::Map),
    ] {
        let s = b.state(name).unwrap().id;
        let mut calls = 0;
        let stats = b
            .migrate_state(s, keys && kind == StateKind::Map, &mut |batch| {
                calls += 1;
                for e in batch.iter_mut() {
                    e.value = match kind {
                        StateKind::List => map_list(&e.value, upper),
                        _ => upper(&e.value),
                    };
                    if keys && kind == StateKind::Map {
                        e.user_key = swap(&e.user_key);
                    }
                }
                Ok(())
            })
            .unwrap();
        assert!(calls > 1, "{name}: entries come in several batches");
        assert!(stats.bytes_written > stats.bytes_read, "{name}: {stats:?}");
        entries += stats.entries;
    }
    entries
}

#[test]
fn values_lists_and_maps_are_rewritten_and_survive_restore() {
    for keys in [false, true] {
        for kind in backends() {
            let dir = tempfile::tempdir().unwrap();
            let mut b =
                StateBackend::open(config(kind, dir.path(), MAX_PARALLELISM, 0, 1)).unwrap();
            fill(&mut b);
            let before = dump(std::slice::from_ref(&b));
            let entries = migrate_all(&mut b, keys);
            // Values and lists: one entry per (key, namespace); maps: one per user key.
            assert_eq!(entries, u64::from(KEYS) * 2 * (1 + 1 + 6), "{kind:?}");
            let want = expected(&before, keys);
            assert_eq!(dump(std::slice::from_ref(&b)), want, "{kind:?} keys={keys}");

            let done = b.checkpoint(1).unwrap();
            drop(b);
            let restored = StateBackend::restore(
                config(kind, dir.path(), MAX_PARALLELISM, 0, 1),
                &[done.handle],
            )
            .unwrap();
            assert_eq!(
                dump(&[restored]),
                want,
                "{kind:?} keys={keys} after restore"
            );
        }
    }
}

#[test]
fn a_failing_migration_is_an_error() {
    for kind in backends() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = StateBackend::open(config(kind, dir.path(), MAX_PARALLELISM, 0, 1)).unwrap();
        fill(&mut b);
        let v = b.state("v").unwrap().id;
        let err = b
            .migrate_state(v, false, &mut |_| {
                Err(statebackend::Error::InvalidArgument(
                    "the old serializer cannot read this".to_string(),
                ))
            })
            .unwrap_err();
        assert!(err.to_string().contains("cannot read this"), "{err}");

        let l = b.state("l").unwrap().id;
        let err = b
            .migrate_state(l, false, &mut |batch| {
                for e in batch.iter_mut() {
                    e.value = vec![0xff];
                }
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("malformed list"), "{err}");

        let m = b.state("m").unwrap().id;
        let err = b
            .migrate_state(m, false, &mut |batch: &mut [MigrationEntry]| {
                for e in batch.iter_mut() {
                    e.user_key = swap(&e.user_key);
                }
                Ok(())
            })
            .unwrap_err();
        assert!(err.to_string().contains("user key"), "{err}");

        let err = b.migrate_state(99, false, &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("99"), "{err}");
    }
}
