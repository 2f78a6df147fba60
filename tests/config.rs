//! Configuration from Flink's keys (classic and modern), from pairs and from files.

use statebackend::{BackendKind, Config, Error};
use std::io::Write;

fn pairs(p: &[(&str, &str)]) -> Result<Config, Error> {
    Config::from_pairs(p.iter().copied())
}

#[test]
fn classic_keys() {
    let c = pairs(&[
        ("state.backend", "filesystem"),
        ("state.backend.fs.checkpointdir", "file:///data/ckpt"),
    ])
    .unwrap();
    assert_eq!(c.backend, BackendKind::Fs);
    assert_eq!(
        c.checkpoint_dir.unwrap().local_path(),
        Some(std::path::Path::new("/data/ckpt"))
    );
    assert_eq!(
        pairs(&[("state.backend", "jobmanager")]).unwrap().backend,
        BackendKind::Memory
    );
}

#[test]
fn modern_keys_and_ours() {
    let c = pairs(&[
        ("state.backend.type", "rocksdb"),
        ("state.checkpoints.dir", "file:///ckpt"),
        ("state.checkpoints.num-retained", "3"),
        ("state.backend.incremental", "true"),
        ("pipeline.max-parallelism", "256"),
        ("state.backend.native.subtask-index", "1"),
        ("state.backend.native.parallelism", "4"),
        ("state.backend.native.memory.max-state-size", "10 mb"),
        ("state.backend.rocksdb.block.blocksize", "16kb"),
        ("taskmanager.numberOfTaskSlots", "4"),
    ])
    .unwrap();
    assert_eq!(c.backend, BackendKind::RocksDb);
    assert_eq!(
        (c.retained_checkpoints, c.incremental, c.max_parallelism),
        (3, true, 256)
    );
    assert_eq!(
        (c.key_group_range.start(), c.key_group_range.end()),
        (64, 127)
    );
    assert_eq!(c.subtask, (1, 4));
    assert_eq!(c.max_state_size, 10 << 20);
    assert_eq!(c.rocksdb_options["block.blocksize"], "16kb");
    // Flink's default: hashmap state, where checkpoints go depends on the directory.
    assert_eq!(
        pairs(&[("state.backend.type", "hashmap")]).unwrap().backend,
        BackendKind::Memory
    );
    assert_eq!(
        pairs(&[
            ("state.backend.type", "hashmap"),
            ("state.checkpoints.dir", "/x")
        ])
        .unwrap()
        .backend,
        BackendKind::Fs
    );
    assert_eq!(
        pairs(&[
            (
                "state.backend.type",
                "io.statebackend.NativeRocksDBBackendFactory"
            ),
            ("state.checkpoints.dir", "/x")
        ])
        .unwrap()
        .backend,
        BackendKind::RocksDb
    );
}

#[test]
fn errors_name_key_and_value() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("state.backend.type", "mongodb")],
            "state.backend.type",
            "mongodb",
        ),
        (
            &[("state.backend", "rocksdbx")],
            "state.backend",
            "rocksdbx",
        ),
        (
            &[("state.checkpoints.dir", "ftp://host/ckpt")],
            "state.checkpoints.dir",
            "unsupported scheme",
        ),
        (
            &[("state.checkpoints.dir", "s3://My_Bucket/ckpt")],
            "state.checkpoints.dir",
            "bucket name",
        ),
        (
            &[("state.checkpoints.dir", "hdfs:///ckpt")],
            "state.checkpoints.dir",
            "name node",
        ),
        (
            &[("state.checkpoints.dir", "file://host/ckpt")],
            "state.checkpoints.dir",
            "file://host/ckpt",
        ),
        (
            &[("state.checkpoints.dir", "not a url")],
            "state.checkpoints.dir",
            "not a url",
        ),
        (
            &[("state.backend.fs.checkpointdir", "relative/path")],
            "state.backend.fs.checkpointdir",
            "relative/path",
        ),
        (
            &[("state.backend.type", "filesystem")],
            "state.checkpoints.dir",
            "needs a checkpoint directory",
        ),
        (
            &[("pipeline.max-parallelism", "0")],
            "pipeline.max-parallelism",
            "0",
        ),
        (
            &[("pipeline.max-parallelism", "40000")],
            "pipeline.max-parallelism",
            "40000",
        ),
        (
            &[("state.checkpoints.num-retained", "-1")],
            "state.checkpoints.num-retained",
            "-1",
        ),
        (
            &[("state.backend.incremental", "yes")],
            "state.backend.incremental",
            "yes",
        ),
        (
            &[("state.backend.native.memory.max-state-size", "5 parsecs")],
            "max-state-size",
            "5 parsecs",
        ),
        (
            &[("state.backend.native.key-group-range", "9-3")],
            "key-group-range",
            "9-3",
        ),
        (
            &[("state.backend.native.key-group-range", "0-200")],
            "key-group-range",
            "0-200",
        ),
        (
            &[("state.backend.native.subtask-index", "1")],
            "key-group-range",
            "subtask-index",
        ),
        (
            &[("state.backend.native.nonsense", "1")],
            "state.backend.native.nonsense",
            "unknown option",
        ),
    ];
    for (input, key, fragment) in cases {
        let err = pairs(input).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(key), "{input:?}: '{msg}' does not name {key}");
        assert!(
            msg.contains(fragment),
            "{input:?}: '{msg}' does not mention {fragment}"
        );
    }
}

#[test]
fn flink_conf_yaml_file() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        "# A flink-conf.yaml\njobmanager.rpc.address: localhost\n\nstate.backend: filesystem   # classic\n\
         state.checkpoints.dir: \"file:///tmp/ckpt\"\nstate.checkpoints.num-retained: 2\n"
    )
    .unwrap();
    let c = Config::from_yaml_file(f.path()).unwrap();
    assert_eq!(c.backend, BackendKind::Fs);
    assert_eq!(c.checkpoint_dir.unwrap().as_str(), "file:///tmp/ckpt");
    assert_eq!(c.retained_checkpoints, 2);

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    writeln!(bad, "state.backend: rocksdb\nthis line has no colon\n").unwrap();
    let msg = Config::from_yaml_file(bad.path()).unwrap_err().to_string();
    assert!(
        msg.contains(":2") && msg.contains("this line has no colon"),
        "{msg}"
    );
    assert!(Config::from_yaml_file("/nonexistent/flink-conf.yaml").is_err());
}
