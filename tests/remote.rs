//! Checkpoints in S3 (the `remote` feature) against a real S3-compatible server:
//! moto on 127.0.0.1, with authentication enforced (tests/common/s3.rs).
#![cfg(feature = "remote")]

mod common;

use common::s3::{Moto, Proxy};
use common::{dump, write_round};
use statebackend::checkpoint_storage::{self, remote, CheckpointStorage};
use statebackend::snapshot::manifest::KeyedData;
use statebackend::snapshot::reader;
use statebackend::{
    CheckpointUrl, Config, KeyGroupRange, RemoteOptions, SnapshotHandle, StateBackend, StateKind,
};

const MAX_PARALLELISM: u32 = 128;

fn config(kind: &str, url: &str, moto: &Moto, extra: &[(&str, &str)]) -> Config {
    let local = tempfile::tempdir().unwrap().keep();
    let mut pairs: Vec<(String, String)> = vec![
        ("state.backend.type".into(), kind.into()),
        ("state.checkpoints.dir".into(), url.into()),
        (
            "state.backend.native.local-dir".into(),
            local.display().to_string(),
        ),
        ("state.checkpoints.num-retained".into(), "1".into()),
    ];
    pairs.extend(moto.pairs().into_iter().map(|(k, v)| (k.to_string(), v)));
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_pairs(pairs).unwrap()
}

fn storage(url: &str, remote: &RemoteOptions) -> std::sync::Arc<dyn CheckpointStorage> {
    checkpoint_storage::open(&CheckpointUrl::parse(url).unwrap(), remote).unwrap()
}

fn restore_latest(config: Config, remote: &RemoteOptions) -> StateBackend {
    let url = config.checkpoint_dir.as_ref().unwrap().as_str().to_string();
    let handles = SnapshotHandle::latest_with(&url, None, remote).unwrap();
    assert!(!handles.is_empty(), "no complete checkpoint under {url}");
    StateBackend::restore(config, &handles).unwrap()
}

/// Full (fs) and incremental (rocksdb) checkpoints go to S3 and come back; only
/// the newest is retained, and the objects of older ones are deleted.
#[test]
fn checkpoints_round_trip_through_s3_and_retention_deletes_objects() {
    let moto = Moto::shared();
    for (kind, extra) in [
        ("fs", &[][..]),
        ("rocksdb", &[("state.backend.incremental", "true")][..]),
    ] {
        let url = moto.url(kind);
        let mut backend = StateBackend::open(config(kind, &url, moto, extra)).unwrap();
        let mut uploads = Vec::new();
        for round in 0..3 {
            write_round(&mut backend, 2000, round, 10);
            let done = backend.checkpoint(round as u64 + 1).unwrap();
            assert!(
                done.retention_warnings.is_empty(),
                "{:?}",
                done.retention_warnings
            );
            let location = done.handle.manifest_location().unwrap();
            assert!(
                location.starts_with(&format!("{url}/chk-{}/", round + 1)),
                "{location}"
            );
            uploads.push((done.bytes_written, done.full_size));
        }
        let store = storage(&url, &moto.options());
        assert_eq!(
            store.checkpoint_ids().unwrap(),
            vec![3],
            "{kind}: retention"
        );
        if kind == "rocksdb" {
            // Later checkpoints upload only the files the previous one lacked.
            let (written, full) = uploads[2];
            assert!(written < full, "{kind}: {uploads:?}");
            let KeyedData::Files(files) = reader::open(
                &SnapshotHandle::manifest_with(
                    &store.location(3, "kg-0-127.manifest"),
                    &moto.options(),
                )
                .unwrap(),
            )
            .unwrap()
            .manifest
            .keyed
            else {
                panic!("not incremental")
            };
            // Shared files of deleted checkpoints are gone; the kept ones are there.
            let kept = store.list_shared("kg-0-127").unwrap();
            let referenced: Vec<String> = files
                .files
                .iter()
                .filter_map(|f| match &f.location {
                    statebackend::snapshot::manifest::FileLocation::Shared(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            let mut sorted = referenced.clone();
            sorted.sort();
            assert_eq!(kept, sorted, "{kind}: shared objects");
        }
        let expected = dump(std::slice::from_ref(&backend));
        drop(backend);
        let restored = restore_latest(config(kind, &url, moto, extra), &moto.options());
        assert_eq!(dump(&[restored]), expected, "{kind}");
    }
}

/// A restore into half the key groups fetches about half the data: ranged reads.
#[test]
fn rescaling_reads_only_the_key_groups_it_needs() {
    let moto = Moto::shared();
    let url = moto.url("rescale");
    let mut backend = StateBackend::open(config("fs", &url, moto, &[])).unwrap();
    let v = backend.register_state("v", StateKind::Value, b"").unwrap();
    for k in 0..40_000u32 {
        let kg = common::kg_of(k as i32, MAX_PARALLELISM);
        backend
            .value_put(v, kg, &k.to_be_bytes(), b"", &[k as u8; 400])
            .unwrap();
    }
    let done = backend.checkpoint(1).unwrap();
    let total = done.full_size;
    assert!(total > 12 << 20, "{total}");
    let expected = dump(std::slice::from_ref(&backend));
    drop(backend);

    let before = remote::bytes_fetched_on_this_thread();
    let half = KeyGroupRange::new(0, 63).unwrap();
    let cfg = config("fs", &url, moto, &[]).with_key_group_range(half);
    let handles = SnapshotHandle::latest_with(&url, None, &moto.options()).unwrap();
    let restored = StateBackend::restore(cfg, &handles).unwrap();
    let fetched = remote::bytes_fetched_on_this_thread() - before;
    println!("restoring key groups 0-63 fetched {fetched} of {total} bytes");
    assert!(
        fetched < total * 6 / 10,
        "a restore of half the key groups fetched {fetched} of {total} bytes"
    );
    let mine = dump(&[restored]);
    assert!(!mine.is_empty());
    for (k, v) in &mine {
        assert_eq!(expected.get(k), Some(v));
    }
    assert_eq!(
        mine.len(),
        expected
            .keys()
            .filter(|(_, kg, ..)| half.contains(*kg))
            .count()
    );
}

/// Objects of a checkpoint that never got its manifest are invisible to restore,
/// and the next completed checkpoint deletes them.
#[test]
fn a_checkpoint_without_manifest_is_invisible_and_cleaned_up() {
    let moto = Moto::shared();
    let url = moto.url("unfinished");
    let mut backend = StateBackend::open(config("fs", &url, moto, &[])).unwrap();
    write_round(&mut backend, 500, 0, 10);
    backend.checkpoint(1).unwrap();
    let expected = dump(std::slice::from_ref(&backend));
    // What a crash between the data and the manifest leaves: data objects only.
    let store = storage(&url, &moto.options());
    let mut orphan = store.create(2, "kg-0-127.123.data").unwrap();
    std::io::Write::write_all(&mut orphan, b"half a checkpoint").unwrap();
    orphan.commit().unwrap();
    assert_eq!(store.checkpoint_ids().unwrap(), vec![1, 2]);

    let restored = restore_latest(config("fs", &url, moto, &[]), &moto.options());
    assert_eq!(dump(std::slice::from_ref(&restored)), expected);
    drop(restored);

    write_round(&mut backend, 500, 1, 10);
    backend.checkpoint(3).unwrap();
    assert_eq!(store.checkpoint_ids().unwrap(), vec![3]);
}

/// An object dropped before its commit never appears, also after parts of a
/// multipart upload went out (the upload is aborted).
#[test]
fn an_uncommitted_object_never_appears() {
    let moto = Moto::shared();
    let url = moto.url("uncommitted");
    let store = storage(&url, &moto.options());
    let mut small = store.create(1, "small.data").unwrap();
    std::io::Write::write_all(&mut small, b"not committed").unwrap();
    drop(small);
    let mut large = store.create(1, "large.data").unwrap();
    let part = vec![7u8; 1 << 20];
    for _ in 0..20 {
        std::io::Write::write_all(&mut large, &part).unwrap(); // two 8 MiB parts go out
    }
    drop(large);
    assert_eq!(store.list(1).unwrap(), Vec::<String>::new());
    let mut done = store.create(1, "done.data").unwrap();
    std::io::Write::write_all(&mut done, &part).unwrap();
    assert_eq!(done.commit().unwrap(), format!("{url}/chk-1/done.data"));
    assert_eq!(store.list(1).unwrap(), vec!["done.data".to_string()]);
}

/// The server dies in the middle of an upload: the checkpoint fails with an error
/// naming the object, and the previous checkpoint is still restorable.
#[test]
fn a_server_dying_mid_upload_leaves_the_previous_checkpoint_restorable() {
    let moto = Moto::shared();
    for (kind, extra) in [
        ("fs", &[][..]),
        ("rocksdb", &[("state.backend.incremental", "true")][..]),
    ] {
        let proxy = Proxy::start(&moto.endpoint);
        let url = moto.url(&format!("dying-{kind}"));
        let mut through_proxy = config(kind, &url, moto, extra);
        through_proxy.remote = moto.options_via(&proxy.endpoint);
        let mut backend = StateBackend::open(through_proxy).unwrap();
        write_round(&mut backend, 3000, 0, 10);
        backend.checkpoint(1).unwrap();
        let expected = dump(std::slice::from_ref(&backend));

        write_round(&mut backend, 3000, 1, 3);
        proxy.cut_after(20_000);
        let err = backend.checkpoint(2).unwrap_err().to_string();
        assert!(proxy.is_cut(), "{kind}: the upload finished before the cut");
        assert!(err.contains(&url), "{kind}: the error names the URL: {err}");

        // The server is back (reached directly): checkpoint 1 is the one to restore.
        let handles = SnapshotHandle::latest_with(&url, None, &moto.options()).unwrap();
        assert_eq!(handles.len(), 1);
        assert!(
            handles[0].manifest_location().unwrap().contains("/chk-1/"),
            "{handles:?}"
        );
        let restored = StateBackend::restore(config(kind, &url, moto, extra), &handles).unwrap();
        assert_eq!(dump(&[restored]), expected, "{kind}");
    }
}

#[test]
fn wrong_credentials_are_a_clear_error_naming_the_url() {
    let moto = Moto::shared();
    let url = moto.url("denied");
    let mut cfg = config("fs", &url, moto, &[]);
    cfg.remote.secret_key = Some("not-the-secret".into());
    let err = StateBackend::open(cfg).unwrap_err().to_string();
    assert!(err.contains(&url), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("PermissionDenied"),
        "{err}"
    );

    let mut cfg = config("fs", &url, moto, &[]);
    cfg.remote.access_key = Some("AKIANOSUCHKEY".into());
    let err = StateBackend::open(cfg).unwrap_err().to_string();
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("InvalidAccessKeyId"), "{err}");
}

#[test]
fn a_missing_bucket_is_a_clear_error_naming_the_url() {
    let moto = Moto::shared();
    let url = "s3://no-such-bucket/checkpoints";
    let err = StateBackend::open(config("rocksdb", url, moto, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains(url), "{err}");
    assert!(err.contains("NoSuchBucket"), "{err}");
    let err = SnapshotHandle::latest_with(url, None, &moto.options())
        .unwrap_err()
        .to_string();
    assert!(err.contains(url) && err.contains("NoSuchBucket"), "{err}");
}

/// A corrupted object is named with its URL and offset.
#[test]
fn a_corrupted_remote_object_names_url_and_offset() {
    let moto = Moto::shared();
    let url = moto.url("corrupt");
    let mut backend = StateBackend::open(config("fs", &url, moto, &[])).unwrap();
    write_round(&mut backend, 2000, 0, 10);
    let done = backend.checkpoint(1).unwrap();
    let store = storage(&url, &moto.options());
    let data = store
        .list(1)
        .unwrap()
        .into_iter()
        .find(|n| n.ends_with(".data"))
        .unwrap();
    let mut bytes = store.read(1, &data).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let mut w = store.create(1, &data).unwrap();
    std::io::Write::write_all(&mut w, &bytes).unwrap();
    w.commit().unwrap();
    let err = StateBackend::restore(config("fs", &url, moto, &[]), &[done.handle])
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupted snapshot"), "{err}");
    assert!(err.contains(&format!("{url}/chk-1/{data}")), "{err}");
    assert!(err.contains("at offset"), "{err}");
}

/// HDFS goes through OpenDAL's native HDFS client. There is no HDFS here: this
/// checks the URL reaches it and an unreachable name node is an error naming the URL.
#[test]
fn an_unreachable_hdfs_name_node_is_a_clear_error() {
    let url = "hdfs://127.0.0.1:1/flink/checkpoints";
    let err = match checkpoint_storage::open(
        &CheckpointUrl::parse(url).unwrap(),
        &RemoteOptions::default(),
    ) {
        Ok(storage) => storage.checkpoint_ids().unwrap_err(),
        Err(e) => e,
    }
    .to_string();
    assert!(err.contains(url), "{err}");
}
