//! `statebackend-inspect` on checkpoints made here: list, verify (also of corrupted
//! ones), dump and diff, for full (Fs) and incremental (RocksDB) checkpoints and a
//! single-stream snapshot file.

#[cfg(feature = "remote")]
mod common;

use serde_json::Value;
use statebackend::{Config, StateBackend, StateKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statebackend-inspect"))
        .args(args)
        .output()
        .expect("the tool runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Files under `dir` whose name contains `part`.
fn files_with(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_with(&p, part));
        } else if p.file_name().unwrap().to_string_lossy().contains(part) {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// Two checkpoints of three states: 7 changes "count" of one key and adds a user
/// to the map; values are UTF-8 so that `--utf8` shows them as text.
fn two_checkpoints(config: Config) -> StateBackend {
    let mut b = StateBackend::open(config.with_retained_checkpoints(5)).unwrap();
    let count = b.register_state("count", StateKind::Value, b"").unwrap();
    let seen = b.register_state("seen", StateKind::List, b"").unwrap();
    let users = b.register_state("users", StateKind::Map, b"").unwrap();
    for k in 0..50u32 {
        let kg = k % 128;
        let key = format!("key-{k}");
        b.value_put(count, kg, key.as_bytes(), b"", b"one").unwrap();
        b.list_add(seen, kg, key.as_bytes(), b"w1", b"a").unwrap();
        b.list_add(seen, kg, key.as_bytes(), b"w1", b"b").unwrap();
        b.map_put(users, kg, key.as_bytes(), b"", b"alice", b"1")
            .unwrap();
    }
    b.checkpoint(6).unwrap();
    b.value_put(count, 3, b"key-3", b"", b"two").unwrap();
    b.map_put(users, 4, b"key-4", b"", b"bob", b"2").unwrap();
    b.checkpoint(7).unwrap();
    b
}

#[test]
fn full_checkpoints_list_verify_dump_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let config = Config::fs(&url(&ckpt))
        .unwrap()
        .with_local_dir(dir.path().join("local"));
    let _b = two_checkpoints(config);
    // A checkpoint that never got its manifest (a crash before it): listed, not complete.
    std::fs::create_dir_all(ckpt.join("chk-8")).unwrap();
    std::fs::write(ckpt.join("chk-8/kg-0-127.x.data"), b"partial").unwrap();

    let list = inspect(&["list", &url(&ckpt), "--json"]);
    assert!(list.status.success(), "{list:?}");
    let rows = json_lines(&list);
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [6, 7, 8]);
    assert_eq!(rows[0]["complete"], true);
    assert_eq!(rows[0]["kind"], "full");
    assert_eq!(rows[0]["key_groups"][0], "0-127");
    assert!(rows[1]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(rows[2]["complete"], false);
    let table = inspect(&["list", &url(&ckpt)]);
    assert!(stdout(&table).contains("no manifest"), "{}", stdout(&table));

    let verify = inspect(&["verify", &url(&ckpt), "--quiet"]);
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(stdout(&verify).matches("ok ").count(), 2);

    let dump = inspect(&["dump", &url(&ckpt), "--checkpoint", "6", "--utf8"]);
    assert!(dump.status.success(), "{dump:?}");
    let lines = json_lines(&dump);
    let summary: Vec<_> = lines
        .iter()
        .filter(|l| l.get("entries").is_some())
        .collect();
    assert_eq!(summary.len(), 3);
    assert!(summary
        .iter()
        .any(|s| s["state"] == "seen" && s["kind"] == "list" && s["entries"] == 50));
    let key3 = lines
        .iter()
        .find(|l| l["state"] == "count" && l["key"] == "key-3")
        .expect("key-3 in the dump");
    assert_eq!(key3["value"], "one");
    assert_eq!(key3["key_group"], 3);
    let list3 = lines
        .iter()
        .find(|l| l["state"] == "seen" && l["key"] == "key-3")
        .unwrap();
    assert_eq!(list3["namespace"], "w1");
    assert_eq!(list3["value"], serde_json::json!(["a", "b"]));

    // Filters; hex by default.
    let only = inspect(&["dump", &url(&ckpt), "--state", "users", "--key-group", "4"]);
    let lines = json_lines(&only);
    let entries: Vec<_> = lines.iter().filter(|l| l.get("value").is_some()).collect();
    assert_eq!(entries.len(), 2, "key-4 has alice and bob in checkpoint 7");
    assert!(entries
        .iter()
        .all(|e| e["state"] == "users" && e["key_group"] == 4));
    // Hex by default: "alice" -> "31", "bob" -> "32".
    let alice = entries
        .iter()
        .find(|e| e["user_key"] == "616c696365")
        .unwrap();
    assert_eq!(alice["value"], "31");
    assert!(entries
        .iter()
        .any(|e| e["user_key"] == "626f62" && e["value"] == "32"));

    let diff = inspect(&[
        "diff",
        &url(&ckpt),
        &url(&ckpt),
        "--checkpoint-a",
        "6",
        "--checkpoint-b",
        "7",
        "--entries",
        "--utf8",
    ]);
    assert_eq!(diff.status.code(), Some(1), "{diff:?}");
    let lines = json_lines(&diff);
    let count = lines
        .iter()
        .find(|l| l["state"] == "count" && l.get("unchanged").is_some())
        .unwrap();
    assert_eq!(
        (count["changed"].as_u64(), count["unchanged"].as_u64()),
        (Some(1), Some(49))
    );
    let users = lines
        .iter()
        .find(|l| l["state"] == "users" && l.get("unchanged").is_some())
        .unwrap();
    assert_eq!(users["added"], 1);
    let changed = lines.iter().find(|l| l["change"] == "changed").unwrap();
    assert_eq!(
        (&changed["before"], &changed["after"]),
        (&Value::from("one"), &Value::from("two"))
    );
    let same = inspect(&["diff", &url(&ckpt), &url(&ckpt)]);
    assert_eq!(same.status.code(), Some(0), "{same:?}");

    // One flipped byte in checkpoint 7's data: its file and offset are named.
    let data = files_with(&ckpt.join("chk-7"), ".data");
    assert_eq!(data.len(), 1);
    flip_byte(&data[0], 40);
    let bad = inspect(&["verify", &url(&ckpt), "--quiet"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let out = stdout(&bad);
    assert!(out.contains("ok "), "checkpoint 6 is fine: {out}");
    assert!(
        out.contains("CORRUPT")
            && out.contains(&data[0].display().to_string())
            && out.contains("at offset"),
        "{out}"
    );
}

#[test]
fn incremental_checkpoints_verify_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let config = Config::rocksdb(&url(&ckpt))
        .unwrap()
        .with_local_dir(dir.path().join("local"))
        .with_incremental(true);
    let b = two_checkpoints(config);
    drop(b);
    let list = json_lines(&inspect(&["list", &url(&ckpt), "--json"]));
    assert!(list
        .iter()
        .all(|r| r["kind"] == "incremental" && r["complete"] == true));

    let verify = inspect(&["verify", &url(&ckpt), "--checkpoint", "7", "--quiet"]);
    assert!(verify.status.success(), "{verify:?}");

    let dump = inspect(&["dump", &url(&ckpt), "--summary"]);
    assert!(dump.status.success(), "{dump:?}");
    let lines = json_lines(&dump);
    assert!(lines
        .iter()
        .any(|l| l["state"] == "users" && l["kind"] == "map" && l["entries"] == 51));

    // A flipped byte in the shared SST files (`<instance>/<name>.sst.<nanos>`) fails
    // the checkpoint that uses them.
    let sst = files_with(&ckpt.join("shared"), ".sst.");
    assert!(!sst.is_empty());
    for f in &sst {
        flip_byte(f, 10);
    }
    let bad = inspect(&["verify", &url(&ckpt), "--checkpoint", "7", "--quiet"]);
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    assert!(
        stdout(&bad).contains("checksum mismatch in bytes 0.."),
        "{}",
        stdout(&bad)
    );
}

#[test]
fn a_single_stream_snapshot_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = StateBackend::open(Config::memory()).unwrap();
    let s = b.register_state("count", StateKind::Value, b"").unwrap();
    b.value_put(s, 9, b"k", b"", b"v").unwrap();
    let path = dir.path().join("stream");
    let mut file = std::fs::File::create(&path).unwrap();
    b.savepoint(1)
        .unwrap()
        .write_to(&mut file, "stream")
        .unwrap();
    drop(file);
    let p = path.to_str().unwrap();
    assert!(inspect(&["verify", p, "--quiet"]).status.success());
    let lines = json_lines(&inspect(&["dump", p, "--utf8"]));
    assert!(lines
        .iter()
        .any(|l| l["key"] == "k" && l["value"] == "v" && l["key_group"] == 9));
    // Not a snapshot at all: corruption (status 1) that names the file.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a snapshot").unwrap();
    let bad = inspect(&["dump", junk.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("junk"));
    // A location that does not exist: status 2.
    let missing = inspect(&["list", "/nonexistent/ckpt"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// Checkpoints in S3 (a moto server on 127.0.0.1): list, verify, dump and diff
/// reach it through the AWS environment variables; a corrupted object fails
/// verification with its URL and offset.
#[cfg(feature = "remote")]
#[test]
fn checkpoints_in_s3() {
    use statebackend::checkpoint_storage;
    let moto = common::s3::Moto::shared();
    let remote_url = moto.url("inspect");
    let local = tempfile::tempdir().unwrap();
    let mut config = Config::rocksdb(&remote_url)
        .unwrap()
        .with_incremental(true)
        .with_local_dir(local.path());
    config.remote = moto.options();
    drop(two_checkpoints(config));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_statebackend-inspect"))
            .args(args)
            .envs(moto.env())
            .output()
            .unwrap()
    };

    let listed = run(&["list", &remote_url, "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let lines = json_lines(&listed);
    let ids: Vec<u64> = lines.iter().map(|l| l["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![6, 7]);
    assert!(lines
        .iter()
        .all(|l| l["complete"] == true && l["kind"] == "incremental"));
    assert!(lines[1]["manifests"][0]
        .as_str()
        .unwrap()
        .starts_with(&format!("{remote_url}/chk-7/")));
    assert!(!lines[1]["time"].as_str().unwrap().is_empty());

    let verified = run(&["verify", &remote_url, "--quiet"]);
    assert!(verified.status.success(), "{}", stdout(&verified));

    let dumped = run(&["dump", &remote_url, "--utf8", "--state", "count"]);
    assert!(dumped.status.success());
    assert!(stdout(&dumped).contains("\"two\""), "{}", stdout(&dumped));

    let diff = run(&[
        "diff",
        &remote_url,
        &remote_url,
        "--checkpoint-a",
        "6",
        "--checkpoint-b",
        "7",
    ]);
    assert_eq!(diff.status.code(), Some(1), "{}", stdout(&diff));

    // Corrupt one uploaded SST file of checkpoint 7.
    let store = checkpoint_storage::open(
        &statebackend::CheckpointUrl::parse(&remote_url).unwrap(),
        &moto.options(),
    )
    .unwrap();
    let sst = store
        .list_shared("kg-0-127")
        .unwrap()
        .into_iter()
        .next_back()
        .unwrap();
    let location = format!("{remote_url}/shared/{sst}");
    let source = checkpoint_storage::open_source(&location, &moto.options()).unwrap();
    let mut bytes = vec![0u8; source.len() as usize];
    source.read_exact_at(0, &mut bytes).unwrap();
    bytes[10] ^= 0xff;
    let mut w = store.create_shared(&sst).unwrap();
    std::io::Write::write_all(&mut w, &bytes).unwrap();
    w.commit().unwrap();
    let verified = run(&["verify", &remote_url, "--quiet"]);
    assert_eq!(verified.status.code(), Some(1), "{}", stdout(&verified));
    let out = stdout(&verified);
    assert!(out.contains("CORRUPT") && out.contains(&location), "{out}");
    assert!(out.contains("offset 0"), "{out}");
}
