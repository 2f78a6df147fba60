use super::*;
use crate::config::Config;
use crate::store::EntryData;
use std::collections::BTreeMap;

fn open(dir: &std::path::Path, size: usize, dirty: usize) -> CachedRocksStore {
    let url = format!("file://{}", dir.join("checkpoints").display());
    let config = Config::rocksdb(&url)
        .unwrap()
        .with_local_dir(dir.join("local"));
    let mut store = CachedRocksStore::new(
        RocksStore::open(&config).unwrap(),
        CacheSize::Fixed(size),
        dirty,
    )
    .unwrap();
    store.add_state(0, StateKind::Value).unwrap();
    store.add_state(1, StateKind::List).unwrap();
    store.add_state(2, StateKind::Map).unwrap();
    store
}

fn in_rocks(store: &CachedRocksStore, s: StateId, key: &[u8]) -> Option<Vec<u8>> {
    let mut k = Vec::new();
    append_prefix(&mut k, 0, key, b"");
    let mut out = Vec::new();
    let found = store.rocks.get_into(s, &k, &mut out).unwrap();
    found.then_some(out)
}
/// A manual compaction writes the cache back first, leaves no file in level 0 and
/// keeps every entry (values, appended lists, maps).
#[test]
fn compacting_writes_back_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 4 << 20, 1 << 20);
    for i in 0..5_000u32 {
        let key = i.to_be_bytes();
        store.value_put(0, 0, &key, b"", &[1; 20]).unwrap();
        store.list_append(1, 0, &key, b"", &[2; 300]).unwrap();
        store.list_append(1, 0, &key, b"", &[3; 7]).unwrap();
        store.map_put(2, 0, &key, b"", b"u", &[4; 9]).unwrap();
    }
    store.rocks.writer().flush(1).unwrap();
    assert!(store.rocks.writer().level0_files(1).unwrap() > 0);
    for s in 0..3 {
        store.compact(s).unwrap();
        assert_eq!(
            store.rocks.writer().level0_files(s).unwrap(),
            0,
            "state {s}"
        );
    }
    assert_eq!(store.cached_bytes().1, 0, "nothing dirty");
    let mut out = Vec::new();
    for i in (0..5_000u32).step_by(101) {
        let key = i.to_be_bytes();
        out.clear();
        assert!(store.value_get(0, 0, &key, b"", &mut out).unwrap());
        assert_eq!(out, [1; 20]);
        out.clear();
        assert!(store.list_get(1, 0, &key, b"", &mut out).unwrap());
        assert_eq!(out, [[2u8; 300].as_slice(), &[3; 7]].concat());
        assert_eq!(in_rocks(&store, 1, &key), Some(out.clone()));
        out.clear();
        assert!(store.map_get(2, 0, &key, b"", b"u", &mut out).unwrap());
        assert_eq!(out, [4; 9]);
    }
}

/// Many new keys with short values (entries inline in their slots, the table is
/// all the cache takes): rebuilding the table after an eviction must not double it
/// past the cache's size, or every later write evicts over the whole table (the
/// footprint benchmark's 10 million new keys once stalled there).
#[test]
fn short_new_keys_keep_the_table_within_the_size() {
    let dir = tempfile::tempdir().unwrap();
    let (size, dirty) = (1 << 20, 128 << 10);
    let mut store = open(dir.path(), size, dirty);
    for i in 0..200_000u64 {
        store
            .value_put(0, 0, &i.to_be_bytes(), b"", &i.to_le_bytes())
            .unwrap();
        let (bytes, _) = store.cached_bytes();
        assert!(
            bytes <= size,
            "{bytes} bytes cached after {i} keys, room for {size}"
        );
    }
    let mut out = Vec::new();
    for i in (0..200_000u64).step_by(997) {
        out.clear();
        assert!(store
            .value_get(0, 0, &i.to_be_bytes(), b"", &mut out)
            .unwrap());
        assert_eq!(out, i.to_le_bytes());
    }
}

#[test]
fn stays_within_its_bounds_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (size, dirty) = (1 << 20, 256 << 10);
    let mut store = open(dir.path(), size, dirty);
    let mut out = Vec::new();
    for round in 0..3u32 {
        for i in 0..20_000u32 {
            let value = [round.to_le_bytes(), i.to_le_bytes()].concat().repeat(8);
            store
                .value_put(0, 0, &i.to_be_bytes(), b"", &value)
                .unwrap();
            store
                .list_append(1, 0, &i.to_be_bytes(), b"", &value[..5])
                .unwrap();
            if i % 7 == 0 {
                out.clear();
                store
                    .value_get(0, 0, &(i / 2).to_be_bytes(), b"", &mut out)
                    .unwrap();
            }
            let (bytes, dirty_bytes) = store.cached_bytes();
            assert!(bytes <= size, "{bytes} bytes cached, room for {size}");
            assert!(
                dirty_bytes <= dirty,
                "{dirty_bytes} dirty bytes, room for {dirty}"
            );
        }
    }
    for i in 0..20_000u32 {
        out.clear();
        assert!(store
            .value_get(0, 0, &i.to_be_bytes(), b"", &mut out)
            .unwrap());
        assert_eq!(
            out,
            [2u32.to_le_bytes(), i.to_le_bytes()].concat().repeat(8)
        );
        out.clear();
        assert!(store
            .list_get(1, 0, &i.to_be_bytes(), b"", &mut out)
            .unwrap());
        assert_eq!(out.len(), 15, "three appends of five bytes");
    }
    // The writer's sorted copy of a run it ingested is part of the size.
    store.write_back().unwrap();
    let kept = store.cache.borrow().writer.kept_bytes();
    assert!(kept > 0, "runs were ingested");
    assert_eq!(store.cache.borrow().writer_kept, kept);
    assert!(store.cached_bytes().0 >= kept);
}

#[test]
fn the_synchronous_phase_writes_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 64 << 20, 16 << 20);
    store.value_put(0, 0, b"a", b"", b"old").unwrap();
    store.write_back().unwrap();
    store.value_put(0, 0, b"a", b"", b"new").unwrap();
    store.list_append(1, 0, b"a", b"", b"x").unwrap();
    let dirty = store.cached_bytes().1;
    let view = store.view().unwrap();
    assert_eq!(store.cached_bytes().1, dirty, "still only in the cache");
    assert_eq!(in_rocks(&store, 0, b"a").as_deref(), Some(&b"old"[..]));
    // Later writes do not show in the view; the cache's writes do.
    store.value_put(0, 0, b"a", b"", b"later").unwrap();
    store.write_back().unwrap();
    let mut seen = Vec::new();
    view.for_each_in_key_group(0, None, &mut |e| {
        seen.push((e.state, format!("{:?}", e.data)));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, format!("{:?}", EntryData::Value(b"new"))),
            (1, format!("{:?}", EntryData::List(b"x"))),
        ]
    );
    assert_eq!(in_rocks(&store, 0, b"a").as_deref(), Some(&b"later"[..]));
}

#[test]
fn appends_to_a_long_clean_list_write_back_only_the_new_elements() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 64 << 20, 16 << 20);
    let long = vec![7u8; LONG_LIST];
    let list = |store: &CachedRocksStore, key: &[u8]| {
        let mut out = Vec::new();
        store.list_get(1, 0, key, b"", &mut out).unwrap();
        out
    };
    // A short clean list is rewritten whole with its new elements.
    store.list_append(1, 0, b"a", b"", b"s").unwrap();
    store.write_back().unwrap();
    assert_eq!(list(&store, b"a"), b"s");
    store.list_append(1, 0, b"a", b"", &long).unwrap();
    assert_eq!(in_rocks(&store, 1, b"a").as_deref(), Some(&b"s"[..]));
    let both = [&b"s"[..], &long].concat();
    assert_eq!(list(&store, b"a"), both);
    store.write_back().unwrap();
    assert_eq!(in_rocks(&store, 1, b"a"), Some(both.clone()));
    // Read back, it is a long clean list: a short append to it waits alone, and
    // the cache drops its stale copy of the list.
    assert_eq!(list(&store, b"a"), both);
    store.list_append(1, 0, b"a", b"", b"t").unwrap();
    assert!(store.cached_bytes().1 < LONG_LIST);
    let all = [&both[..], b"t"].concat();
    assert_eq!(list(&store, b"a"), all, "the read merges RocksDB's list");
    store.write_back().unwrap();
    assert_eq!(in_rocks(&store, 1, b"a"), Some(all.clone()));
    assert_eq!(list(&store, b"a"), all);
    // Long appends to a key the cache knows nothing of combine until written back.
    store.list_append(1, 0, b"c", b"", &long).unwrap();
    store.list_append(1, 0, b"c", b"", &long).unwrap();
    assert_eq!(in_rocks(&store, 1, b"c"), None);
    store.write_back().unwrap();
    assert_eq!(in_rocks(&store, 1, b"c"), Some([&long[..], &long].concat()));
}

/// Runs are ingested as files while the DB fits in RocksDB's memory, and go through
/// the memtable once it has outgrown it.
#[test]
fn runs_go_through_the_memtable_once_the_state_outgrew_memory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("checkpoints").display());
    let mut config = Config::rocksdb(&url)
        .unwrap()
        .with_local_dir(dir.path().join("local"));
    config
        .set_rocksdb_option("state.backend.rocksdb.memory.fixed-per-slot", "8mb")
        .unwrap();
    let mut store = CachedRocksStore::new(
        RocksStore::open(&config).unwrap(),
        CacheSize::Fixed(32 << 20),
        16 << 20,
    )
    .unwrap();
    store.add_state(0, StateKind::Value).unwrap();
    let in_memtable = |store: &CachedRocksStore| {
        let writer = store.rocks.writer();
        let cf = writer.cf(0).unwrap();
        writer
            .inner
            .db
            .property_int_value_cf(&cf, "rocksdb.num-entries-active-mem-table")
            .unwrap()
            .unwrap()
    };
    let run = |store: &mut CachedRocksStore, round: u32| {
        for i in 0..100u32 {
            let key = [round.to_be_bytes(), i.to_be_bytes()].concat();
            store.value_put(0, 0, &key, b"", &[7; 100]).unwrap();
        }
        store.write_back().unwrap();
    };
    run(&mut store, 0);
    assert!(!store.rocks.writer().outgrew_memory());
    assert_eq!(in_memtable(&store), 0, "ingested");
    // 12 MiB of incompressible state, more than the 8 MiB RocksDB has.
    for i in 0..12_288u32 {
        let key = [9u32.to_be_bytes(), i.to_be_bytes()].concat();
        let value = crate::store::rocks::test_values::value(i.into(), 0);
        store.value_put(0, 0, &key, b"", &value).unwrap();
    }
    store.write_back().unwrap();
    store.rocks.writer().flush(0).unwrap();
    assert!(store.rocks.writer().outgrew_memory());
    run(&mut store, 1);
    assert_eq!(in_memtable(&store), 100, "written through the memtable");
    let mut out = Vec::new();
    assert!(store
        .value_get(
            0,
            0,
            &[1u32.to_be_bytes(), 7u32.to_be_bytes()].concat(),
            b"",
            &mut out
        )
        .unwrap());
    assert_eq!(out, [7; 100]);
}

/// (state, key, user key) → value (a list's encoded elements, concatenated).
type Model = BTreeMap<(StateId, Vec<u8>, Vec<u8>), Vec<u8>>;

/// Everything a view holds, in the model's shape.
fn view_contents(view: &dyn StoreView) -> Model {
    let mut seen = Model::new();
    view.for_each_in_key_group(0, None, &mut |e| {
        let (uk, v) = match e.data {
            EntryData::Value(v) | EntryData::List(v) => (Vec::new(), v.to_vec()),
            EntryData::MapEntry { user_key, value } => (user_key.to_vec(), value.to_vec()),
        };
        seen.insert((e.state, e.key.to_vec(), uk), v);
        Ok(())
    })
    .unwrap();
    seen
}

/// Everything an incremental checkpoint's files hold, once linked.
fn linked_contents(dir: &std::path::Path, link: CheckpointLink) -> Model {
    let local = link.resolve().unwrap();
    let config = Config::rocksdb("file:///unused")
        .unwrap()
        .with_local_dir(dir.join("restored"));
    let kinds = [StateKind::Value, StateKind::List, StateKind::Map];
    let restored = RocksStore::open_in(&config, config.key_group_range, &kinds, |db| {
        std::fs::create_dir_all(db).unwrap();
        for f in std::fs::read_dir(&local.dir).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), db.join(f.file_name())).unwrap();
        }
        Ok(())
    })
    .unwrap();
    view_contents(&*restored.view().unwrap())
}

/// Random operations against a model with a cache so small that runs are always
/// in flight: reads, snapshots taken while runs land and read much later,
/// incremental checkpoints linked behind runs and opened later, map scans and
/// clears (which wait for the writer) must all see the model's state.
#[test]
fn runs_in_flight_lose_nothing_and_snapshots_and_checkpoints_see_their_moment() {
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), 96 << 10, 6 << 10);
        store.cache.borrow().writer.set_chunk_delay(50);
        let mut model = Model::new();
        let mut views: Vec<(Box<dyn StoreView>, Model)> = Vec::new();
        let mut links: Vec<(CheckpointLink, Model)> = Vec::new();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..30_000u32 {
            let key = (next(400) as u16).to_be_bytes().to_vec();
            let uk = vec![next(6) as u8];
            let len = if next(20) == 0 {
                300
            } else {
                1 + next(30) as usize
            };
            let value: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
            let mut out = Vec::new();
            match next(64) {
                0..=11 => {
                    store.value_put(0, 0, &key, b"", &value).unwrap();
                    model.insert((0, key, vec![]), value);
                }
                12..=23 => {
                    store.list_append(1, 0, &key, b"", &value).unwrap();
                    model.entry((1, key, vec![])).or_default().extend(&value);
                }
                24..=27 => {
                    store.list_replace(1, 0, &key, b"", &value).unwrap();
                    model.insert((1, key, vec![]), value);
                }
                28..=35 => {
                    store.map_put(2, 0, &key, b"", &uk, &value).unwrap();
                    model.insert((2, key, uk), value);
                }
                36..=39 => {
                    store.map_remove(2, 0, &key, b"", &uk).unwrap();
                    model.remove(&(2, key, uk));
                }
                40 => {
                    let s = next(3) as StateId;
                    store.clear(s, 0, &key, b"").unwrap();
                    model.retain(|(ms, mk, _), _| !(*ms == s && *mk == key));
                }
                41..=44 => {
                    let found = store.value_get(0, 0, &key, b"", &mut out).unwrap();
                    let expected = model.get(&(0, key, vec![]));
                    assert_eq!(found.then_some(&out), expected, "seed {seed}, step {step}");
                }
                45..=48 => {
                    let found = store.list_get(1, 0, &key, b"", &mut out).unwrap();
                    let expected = model.get(&(1, key, vec![]));
                    assert_eq!(found.then_some(&out), expected, "seed {seed}, step {step}");
                }
                49..=52 => {
                    let found = store.map_get(2, 0, &key, b"", &uk, &mut out).unwrap();
                    let expected = model.get(&(2, key.clone(), uk.clone()));
                    assert_eq!(found.then_some(&out), expected, "seed {seed}, step {step}");
                    let mut all = Vec::new();
                    // Often enough that maps are scanned again unchanged (images).
                    if next(2) == 0 {
                        store
                            .map_for_each(2, 0, &key, b"", &mut |u, v| {
                                all.push((u.to_vec(), v.to_vec()));
                                Ok(())
                            })
                            .unwrap();
                        let expected: Vec<_> = model
                            .range((2, key.clone(), vec![])..(2, key.clone(), vec![255; 2]))
                            .map(|((_, _, u), v)| (u.clone(), v.clone()))
                            .collect();
                        assert_eq!(all, expected, "seed {seed}, step {step}");
                    }
                }
                56 => {
                    let mut entries = Vec::new();
                    for u in [uk.clone(), vec![next(6) as u8]] {
                        crate::codec::put_list_element(&mut entries, &u);
                        crate::codec::put_list_element(&mut entries, &value);
                        model.insert((2, key.clone(), u), value.clone());
                    }
                    store.map_put_all(2, 0, &key, b"", &entries).unwrap();
                }
                57 => {
                    let empty = store.map_is_empty(2, 0, &key, b"").unwrap();
                    let expected = !model
                        .range((2, key.clone(), vec![])..(2, key.clone(), vec![255; 2]))
                        .any(|_| true);
                    assert_eq!(empty, expected, "seed {seed}, step {step}");
                }
                53..=55 => {
                    if views.len() < 3 {
                        views.push((store.view().unwrap(), model.clone()));
                    }
                }
                58 if next(4) == 0 => {
                    if links.len() < 2 {
                        links.push((store.local_checkpoint().unwrap().unwrap(), model.clone()));
                    } else {
                        let (link, then) = links.remove(0);
                        assert_eq!(
                            linked_contents(dir.path(), link),
                            then,
                            "seed {seed}, step {step}"
                        );
                    }
                }
                _ => {
                    if !views.is_empty() {
                        let (view, then) = views.remove(next(views.len() as u64) as usize);
                        assert_eq!(view_contents(&*view), then, "seed {seed}, step {step}");
                    }
                }
            }
            let (bytes, dirty) = store.cached_bytes();
            assert!(
                bytes <= 96 << 10,
                "{bytes} bytes cached, room for {}",
                96 << 10
            );
            assert!(
                dirty <= 6 << 10,
                "{dirty} dirty bytes, room for {}",
                6 << 10
            );
        }
        for (view, then) in views {
            assert_eq!(view_contents(&*view), then, "seed {seed}, at the end");
        }
        for (link, then) in links {
            assert_eq!(
                linked_contents(dir.path(), link),
                then,
                "seed {seed}, at the end"
            );
        }
        assert_eq!(view_contents(&*store.view().unwrap()), model, "seed {seed}");
        store.write_back().unwrap();
        assert_eq!(
            view_contents(&*store.rocks.view().unwrap()),
            model,
            "seed {seed}, in RocksDB"
        );
    }
}

/// Runs `f` on another thread and returns its result, failing the test if it has
/// not returned within 30 s: a call that waits for a dead writer would hang.
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} hung after the write-back thread panicked"))
}

fn assert_poisoned<T>(what: &str, r: Result<T>) {
    match r {
        Err(crate::Error::Poisoned(msg)) => assert!(
            msg.contains("write-back thread panicked") && msg.contains("injected panic"),
            "{what}: {msg}"
        ),
        Err(e) => panic!("{what}: expected the writer's panic, got {e}"),
        Ok(_) => panic!("{what}: expected the writer's panic, got a result"),
    }
}

/// A store whose writer panics at its next job, after `delay_ms` (so that the
/// task thread is already waiting for it when it dies).
fn store_whose_writer_panics(dir: &std::path::Path, delay_ms: u64) -> CachedRocksStore {
    let store = open(dir, 4 << 20, 64 << 10);
    let cache = store.cache.borrow();
    cache.writer.set_chunk_delay(delay_ms * 1000);
    cache.writer.panic_on_next_job();
    drop(cache);
    store
}

/// A write that must wait for a run gets the panic as an error, and so does every
/// later call, instead of blocking forever.
#[test]
fn a_panicking_writer_fails_writes_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_whose_writer_panics(dir.path(), 100);
    let (mut store, r) = bounded("a write", move || {
        // Dirty bytes over 64 KiB hand runs over; the second one waits for the first.
        let r = (0..100_000u32)
            .try_for_each(|i| store.value_put(0, 0, &i.to_be_bytes(), b"", &[7; 64]));
        (store, r)
    });
    assert_poisoned("the write", r);
    assert_poisoned("a later write", store.value_put(0, 0, b"k", b"", b"v"));
    let mut out = Vec::new();
    assert_poisoned("a later read", store.value_get(0, 0, b"k", b"", &mut out));
}

/// A read of a list whose appended elements are in the run the writer dies on waits
/// for that run, then fails.
#[test]
fn a_panicking_writer_fails_a_read_waiting_for_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_whose_writer_panics(dir.path(), 300);
    store.list_append(1, 0, b"k", b"", &[1, b'a']).unwrap();
    store.cache.borrow_mut().hand_over().unwrap();
    let (_, r) = bounded("a read", move || {
        let mut out = Vec::new();
        let r = store.list_get(1, 0, b"k", b"", &mut out);
        (store, r)
    });
    assert_poisoned("the read", r);
}

/// Both kinds of snapshot fail: the full snapshot's synchronous phase, and the
/// incremental checkpoint whose link the dying writer was to make.
#[test]
fn a_panicking_writer_fails_both_snapshot_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store_whose_writer_panics(dir.path(), 300);
    store.value_put(0, 0, b"k", b"", b"v").unwrap();
    // The link is the writer's next job: the asynchronous phase waits for it.
    let link = store.local_checkpoint().unwrap().expect("a link");
    assert_poisoned(
        "the incremental checkpoint",
        bounded("a link", move || link.resolve()),
    );
    let (_, r) = bounded("a full snapshot", move || {
        let r = store.view().map(|_| ());
        (store, r)
    });
    assert_poisoned("the full snapshot", r);
}

/// The metrics count what the cache did: reads that hit or missed (point reads and
/// map scans), dirty bytes until they are handed over, runs in flight, and the task
/// thread's waits for the writer.
#[test]
fn metrics_count_hits_misses_dirty_bytes_runs_and_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), 8 << 20, 64 << 10);
    let fresh = store.metrics();
    assert_eq!((fresh.hits, fresh.misses, fresh.dirty_bytes), (0, 0, 0));
    assert_eq!((fresh.runs_in_flight, fresh.writer_stalls), (0, 0));

    let mut out = Vec::new();
    // A key nobody wrote: RocksDB is read (a miss), then the known miss is cached.
    assert!(!store.value_get(0, 0, b"k", b"", &mut out).unwrap());
    assert_eq!((store.metrics().hits, store.metrics().misses), (0, 1));
    assert!(!store.value_get(0, 0, b"k", b"", &mut out).unwrap());
    assert_eq!((store.metrics().hits, store.metrics().misses), (1, 1));
    store.value_put(0, 0, b"k", b"", b"v").unwrap();
    assert!(store.value_get(0, 0, b"k", b"", &mut out).unwrap());
    assert_eq!((store.metrics().hits, store.metrics().misses), (2, 1));
    assert!(
        store.metrics().dirty_bytes > 0,
        "the put is not handed over"
    );
    assert!(store.metrics().cached_bytes >= store.metrics().dirty_bytes);

    // A map scan reads RocksDB after writing the cache back (a miss, nothing dirty
    // after); the next scan is answered by the map's image (a hit).
    store.map_put(2, 0, b"m", b"", b"u", b"v").unwrap();
    let scan = |store: &CachedRocksStore| {
        let mut n = 0;
        store
            .map_for_each(2, 0, b"m", b"", &mut |_, _| {
                n += 1;
                Ok(())
            })
            .unwrap();
        n
    };
    assert_eq!(scan(&store), 1);
    let m = store.metrics();
    assert_eq!((m.hits, m.misses, m.dirty_bytes), (2, 2, 0));
    assert_eq!(scan(&store), 1);
    assert_eq!((store.metrics().hits, store.metrics().misses), (3, 2));

    // A slow writer: a run is in flight when the next one is due, and the task
    // thread waits for it.
    store.cache.borrow().writer.set_chunk_delay(20_000);
    let mut most_in_flight = 0;
    for i in 0..4_000u32 {
        store
            .value_put(0, 0, &i.to_be_bytes(), b"", &[7; 100])
            .unwrap();
        most_in_flight = most_in_flight.max(store.metrics().runs_in_flight);
        assert!(store.metrics().dirty_bytes <= 64 << 10);
    }
    let m = store.metrics();
    assert_eq!(most_in_flight, 1);
    assert!(m.writer_stalls >= 1, "{m:?}");
    assert!(m.writer_stall_nanos > 0, "{m:?}");
    store.cache.borrow().writer.set_chunk_delay(0);
    store.num_entries().unwrap();
    let m = store.metrics();
    assert_eq!(
        (m.runs_in_flight, m.dirty_bytes),
        (0, 0),
        "all written back"
    );
}
