//! `statebackend-inspect`: looks inside checkpoints without writing code.
//!
//! ```text
//! statebackend-inspect list   file:///data/ckpt
//! statebackend-inspect verify file:///data/ckpt            # every checkpoint
//! statebackend-inspect verify /data/ckpt/chk-7/kg-0-127.manifest
//! statebackend-inspect dump   file:///data/ckpt --state count --key-group 0-63 --utf8
//! statebackend-inspect diff   file:///data/ckpt --checkpoint 6  file:///data/ckpt --checkpoint 7
//! ```
//!
//! A location is a checkpoint directory (`file:///…`, a path, or `s3://bucket/prefix`
//! reached with the AWS environment variables), a manifest (`…/chk-N/kg-A-B.manifest`),
//! or a single-stream snapshot file (what the Flink backends write into Flink's
//! checkpoint files). Exit status: 0 success, 1 corruption found (any command) or a
//! difference (`diff`), 2 any other error.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use statebackend::checkpoint_storage::source::FileSource;
use statebackend::checkpoint_storage::{self, CheckpointStorage};
use statebackend::snapshot::manifest::KeyedData;
use statebackend::snapshot::reader::{self, OpenSnapshot};
use statebackend::snapshot::{complete_checkpoint, manifest_names, MANIFEST_SUFFIX};
use statebackend::{
    CheckpointUrl, Config, EntryValue, KeyGroupRange, RemoteOptions, SnapshotHandle, StateBackend,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "statebackend-inspect",
    version,
    about = "Lists, verifies, dumps and compares libstatebackend checkpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The checkpoints under a checkpoint directory: id, time, size, key groups, kind, complete or not.
    List {
        /// A checkpoint directory: file:///path, /path or s3://bucket/prefix.
        url: String,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reads every byte and checks every checksum (exit status 1 on corruption).
    Verify {
        #[command(flatten)]
        at: Location,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// The states of a checkpoint, their kinds and entry counts, and the entries as JSON lines.
    Dump {
        #[command(flatten)]
        at: Location,
        #[command(flatten)]
        filter: Filter,
        /// Only the states and their entry counts.
        #[arg(long)]
        summary: bool,
        /// Bytes as text where they are UTF-8 without control characters (else {"hex": …}); hex by default.
        #[arg(long)]
        utf8: bool,
    },
    /// What changed between two checkpoints, per state (exit status 1 if anything did).
    Diff {
        /// The older checkpoint: a directory, manifest or stream file.
        a: String,
        /// The newer checkpoint.
        b: String,
        /// Checkpoint id under `a` (default: its newest complete checkpoint).
        #[arg(long)]
        checkpoint_a: Option<u64>,
        /// Checkpoint id under `b` (default: its newest complete checkpoint).
        #[arg(long)]
        checkpoint_b: Option<u64>,
        #[command(flatten)]
        filter: Filter,
        /// Every added, removed or changed entry as a JSON line, not only the counts.
        #[arg(long)]
        entries: bool,
        /// Bytes as text where they are UTF-8 without control characters (else {"hex": …}).
        #[arg(long)]
        utf8: bool,
    },
}

#[derive(Args)]
struct Location {
    /// A checkpoint directory (file:///path, /path, s3://bucket/prefix), a manifest,
    /// or a stream file.
    location: String,
    /// With a directory: this checkpoint id (default: every checkpoint for
    /// `verify`, the newest complete one otherwise).
    #[arg(long)]
    checkpoint: Option<u64>,
}

#[derive(Args, Clone)]
struct Filter {
    /// Only these states (repeatable).
    #[arg(long = "state")]
    states: Vec<String>,
    /// Only these key groups: N or A-B.
    #[arg(long, value_parser = parse_range)]
    key_group: Option<KeyGroupRange>,
}

impl Filter {
    fn keeps(&self, state: &str, kg: u32) -> bool {
        (self.states.is_empty() || self.states.iter().any(|s| s == state))
            && self.key_group.is_none_or(|r| r.contains(kg))
    }
}

fn parse_range(s: &str) -> Result<KeyGroupRange, String> {
    // `A-B` as configuration writes it, or a single key group.
    KeyGroupRange::parse(s)
        .or_else(|| {
            let n = s.trim().parse().ok()?;
            KeyGroupRange::new(n, n).ok()
        })
        .ok_or_else(|| format!("'{s}': expected a key group N or a range A-B"))
}

/// A failed check (exit 1) or another error (exit 2).
enum Failure {
    Check(String),
    Error(String),
}

impl From<statebackend::Error> for Failure {
    fn from(e: statebackend::Error) -> Self {
        match e {
            statebackend::Error::Corrupted { .. } => Failure::Check(e.to_string()),
            e => Failure::Error(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Error(e.to_string())
    }
}

type Outcome = Result<ExitCode, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::List { url, json } => list(&url, json),
        Command::Verify { at, quiet } => verify(&at, quiet),
        Command::Dump {
            at,
            filter,
            summary,
            utf8,
        } => dump(&at, &filter, summary, utf8),
        Command::Diff {
            a,
            b,
            checkpoint_a,
            checkpoint_b,
            filter,
            entries,
            utf8,
        } => diff(
            &Location {
                location: a,
                checkpoint: checkpoint_a,
            },
            &Location {
                location: b,
                checkpoint: checkpoint_b,
            },
            &filter,
            entries,
            utf8,
        ),
    };
    match result {
        Ok(code) => code,
        Err(Failure::Check(msg)) => {
            eprintln!("statebackend-inspect: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Error(msg)) => {
            eprintln!("statebackend-inspect: {msg}");
            ExitCode::from(2)
        }
    }
}

// ---- locations ---------------------------------------------------------------------

/// The checkpoint storage `location` names, if it is a checkpoint directory: a
/// local directory, or a remote URL that does not name a manifest.
fn directory(location: &str) -> Result<Option<Arc<dyn CheckpointStorage>>, Failure> {
    let Ok(url) = CheckpointUrl::parse(location) else {
        return Ok(None);
    };
    let is_directory = match url.local_path() {
        Some(path) => path.is_dir(),
        None => !location.ends_with(MANIFEST_SUFFIX),
    };
    if !is_directory {
        return Ok(None);
    }
    Ok(Some(checkpoint_storage::open(
        &url,
        &RemoteOptions::default(),
    )?))
}

/// The handles a location stands for: the manifests of one checkpoint of a
/// directory, a manifest, or a stream file.
fn handles(at: &Location) -> Result<Vec<SnapshotHandle>, Failure> {
    if let Some(storage) = directory(&at.location)? {
        let handles = match at.checkpoint {
            Some(id) => manifests_of(storage.as_ref(), id)?,
            None => SnapshotHandle::latest(&at.location)?,
        };
        if handles.is_empty() {
            return Err(Failure::Error(format!(
                "{}: no complete checkpoint{}",
                at.location,
                at.checkpoint.map(|id| format!(" {id}")).unwrap_or_default()
            )));
        }
        return Ok(handles);
    }
    let url = CheckpointUrl::parse(&at.location)
        .map_err(|e| Failure::Error(format!("{}: {e}", at.location)))?;
    if at.location.ends_with(MANIFEST_SUFFIX) {
        return Ok(vec![SnapshotHandle::manifest(&at.location)?]);
    }
    match url.local_path() {
        Some(path) if path.is_file() => Ok(vec![SnapshotHandle::Stream(Arc::new(
            FileSource::open(path)?,
        ))]),
        _ => Err(Failure::Error(format!(
            "{}: no such checkpoint directory or file",
            at.location
        ))),
    }
}

/// The manifests of checkpoint `id`.
fn manifests_of(storage: &dyn CheckpointStorage, id: u64) -> Result<Vec<SnapshotHandle>, Failure> {
    manifest_names(storage, id)?
        .into_iter()
        .map(|n| Ok(SnapshotHandle::manifest(&storage.location(id, &n))?))
        .collect()
}

/// The path or URL of a manifest handle; `fallback` for other handles.
fn name_of(handle: &SnapshotHandle, fallback: &str) -> String {
    handle.manifest_location().unwrap_or(fallback).to_string()
}

fn kind_of(snapshot: &OpenSnapshot) -> &'static str {
    match snapshot.manifest.keyed {
        KeyedData::Full(_) => "full",
        KeyedData::Files(_) => "incremental",
    }
}

// ---- list ----------------------------------------------------------------------------

fn list(url: &str, as_json: bool) -> Outcome {
    let storage = directory(url)?
        .ok_or_else(|| Failure::Error(format!("{url}: not a checkpoint directory")))?;
    let mut out = std::io::stdout().lock();
    if !as_json {
        writeln!(
            out,
            "{:>8}  {:<20}  {:>12}  {:<12}  {:<11}  {:<8}  manifests",
            "id", "time (UTC)", "bytes", "key groups", "kind", "complete"
        )?;
    }
    for id in storage.checkpoint_ids()? {
        let mut ranges = Vec::new();
        let mut kinds = Vec::new();
        let mut bytes = 0u64;
        let mut newest = None;
        let mut max_parallelism = None;
        let mut problems = Vec::new();
        let mut manifests = Vec::new();
        for name in &manifest_names(storage.as_ref(), id)? {
            let location = storage.location(id, name);
            match SnapshotHandle::manifest(&location).and_then(|h| reader::open(&h)) {
                Ok(s) => {
                    ranges.push(s.manifest.key_group_range);
                    kinds.push(kind_of(&s));
                    bytes += s.data_len();
                    max_parallelism = Some(s.manifest.max_parallelism);
                    newest = newest.max(storage.modified(id, name).ok().flatten());
                }
                Err(e) => problems.push(e.to_string()),
            }
            manifests.push(location);
        }
        ranges.sort_by_key(|r| r.start());
        // The rule a restore uses to pick a checkpoint (`SnapshotHandle::latest`).
        let covered = match complete_checkpoint(storage.as_ref(), id, None) {
            Ok(found) => found.is_some(),
            Err(e) => {
                problems.push(e.to_string());
                false
            }
        };
        let complete = covered && problems.is_empty();
        kinds.dedup();
        let time = newest
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        let groups: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
        if as_json {
            let line = json!({
                "id": id,
                "time": time,
                "bytes": bytes,
                "key_groups": groups,
                "max_parallelism": max_parallelism,
                "kind": kinds.join(","),
                "complete": complete,
                "manifests": manifests,
                "problems": problems,
            });
            writeln!(out, "{line}")?;
        } else {
            let why = if manifests.is_empty() {
                " (no manifest: unfinished)".to_string()
            } else if !problems.is_empty() {
                format!(" ({})", problems.join("; "))
            } else if !covered {
                " (key groups missing)".to_string()
            } else {
                String::new()
            };
            writeln!(
                out,
                "{:>8}  {:<20}  {:>12}  {:<12}  {:<11}  {:<8}  {}{why}",
                id,
                time,
                bytes,
                groups.join(","),
                kinds.join(","),
                if complete { "yes" } else { "no" },
                manifests.len()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- verify --------------------------------------------------------------------------

fn verify(at: &Location, quiet: bool) -> Outcome {
    let handles: Vec<SnapshotHandle> = match (directory(&at.location)?, at.checkpoint) {
        // A directory without an id: every checkpoint in it.
        (Some(storage), None) => {
            let mut all = Vec::new();
            for id in storage.checkpoint_ids()? {
                let manifests = manifests_of(storage.as_ref(), id)?;
                if manifests.is_empty() {
                    eprintln!("checkpoint {id}: no manifest (unfinished; not part of any restore)");
                }
                all.extend(manifests);
            }
            all
        }
        _ => handles(at)?,
    };
    let mut failed = 0;
    for handle in &handles {
        let name = name_of(handle, &at.location);
        match verify_one(handle, quiet) {
            Ok(bytes) => println!("ok       {name} ({bytes} bytes checked)"),
            Err(e) => {
                failed += 1;
                println!("CORRUPT  {name}: {e}");
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Check(format!(
            "{failed} of {} snapshots failed verification",
            handles.len()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens (manifest checks) and reads a snapshot through; the bytes checked.
fn verify_one(handle: &SnapshotHandle, quiet: bool) -> Result<u64, statebackend::Error> {
    let snapshot = reader::open(handle)?;
    let total = snapshot.data_len();
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
            .expect("a valid template"),
    );
    bar.set_message(format!("checkpoint {}", snapshot.manifest.checkpoint_id));
    let result = snapshot.verify(&mut |done| bar.set_position(done));
    bar.finish_and_clear();
    result.map(|()| total)
}

// ---- dump and diff -------------------------------------------------------------------

/// A checkpoint restored into a memory backend owning every key group.
fn restore(at: &Location) -> Result<StateBackend, Failure> {
    let handles = handles(at)?;
    let first = reader::open(&handles[0])?;
    let config = Config::memory().with_max_parallelism(first.manifest.max_parallelism)?;
    Ok(StateBackend::restore(config, &handles)?)
}

/// Bytes as JSON: hex, or with `utf8` text where they are UTF-8 without control
/// characters (serialized numbers are not text) and `{"hex": …}` where not.
fn bytes_json(bytes: &[u8], utf8: bool) -> Value {
    let text = std::str::from_utf8(bytes).ok().filter(|s| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    });
    match text {
        Some(s) if utf8 => Value::String(s.to_string()),
        _ if utf8 => json!({ "hex": hex(bytes) }),
        _ => Value::String(hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One entry's identity and value, as dump and diff print them.
struct Item {
    state: String,
    key_group: u32,
    key: Vec<u8>,
    namespace: Vec<u8>,
    user_key: Option<Vec<u8>>,
    value: EntryValue,
}

impl Item {
    fn json(&self, utf8: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("state".into(), json!(self.state));
        m.insert("key_group".into(), json!(self.key_group));
        m.insert("key".into(), bytes_json(&self.key, utf8));
        m.insert("namespace".into(), bytes_json(&self.namespace, utf8));
        if let Some(uk) = &self.user_key {
            m.insert("user_key".into(), bytes_json(uk, utf8));
        }
        m
    }

    fn value_json(&self, utf8: bool) -> Value {
        match &self.value {
            EntryValue::Value(v) | EntryValue::MapEntry { value: v, .. } => bytes_json(v, utf8),
            EntryValue::List(elements) => {
                Value::Array(elements.iter().map(|e| bytes_json(e, utf8)).collect())
            }
        }
    }
}

/// A state's name and kind.
type StateName = (String, &'static str);

/// Every entry of a backend that `filter` keeps, and the states' names and kinds.
fn items(backend: &StateBackend, filter: &Filter) -> Result<(Vec<StateName>, Vec<Item>), Failure> {
    let states: Vec<StateName> = backend
        .states()
        .iter()
        .map(|s| (s.name.clone(), s.kind.name()))
        .collect();
    let mut out = Vec::new();
    for entry in backend.entries()? {
        let e = entry?;
        let state = &states[e.state as usize].0;
        if !filter.keeps(state, e.key_group) {
            continue;
        }
        let user_key = match &e.value {
            EntryValue::MapEntry { user_key, .. } => Some(user_key.clone()),
            _ => None,
        };
        out.push(Item {
            state: state.clone(),
            key_group: e.key_group,
            key: e.key,
            namespace: e.namespace,
            user_key,
            value: e.value,
        });
    }
    Ok((states, out))
}

fn dump(at: &Location, filter: &Filter, summary: bool, utf8: bool) -> Outcome {
    let backend = restore(at)?;
    let (states, items) = items(&backend, filter)?;
    let mut out = std::io::stdout().lock();
    for (name, kind) in &states {
        if !filter.states.is_empty() && !filter.states.contains(name) {
            continue;
        }
        let entries = items.iter().filter(|i| &i.state == name).count();
        writeln!(
            out,
            "{}",
            json!({ "state": name, "kind": kind, "entries": entries })
        )?;
    }
    if !summary {
        for item in &items {
            let mut m = item.json(utf8);
            m.insert("value".into(), item.value_json(utf8));
            writeln!(out, "{}", Value::Object(m))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Key = (String, u32, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn keyed(items: Vec<Item>) -> BTreeMap<Key, Item> {
    items
        .into_iter()
        .map(|i| {
            (
                (
                    i.state.clone(),
                    i.key_group,
                    i.key.clone(),
                    i.namespace.clone(),
                    i.user_key.clone(),
                ),
                i,
            )
        })
        .collect()
}

fn diff(a: &Location, b: &Location, filter: &Filter, entries: bool, utf8: bool) -> Outcome {
    let (states_a, items_a) = items(&restore(a)?, filter)?;
    let (states_b, items_b) = items(&restore(b)?, filter)?;
    let (old, new) = (keyed(items_a), keyed(items_b));
    #[derive(Default)]
    struct Counts {
        added: u64,
        removed: u64,
        changed: u64,
        unchanged: u64,
    }
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for (name, _) in states_a.iter().chain(&states_b) {
        if filter.states.is_empty() || filter.states.contains(name) {
            counts.entry(name.clone()).or_default();
        }
    }
    let line = |change: &str, item: &Item, before: Option<&Item>| -> std::io::Result<()> {
        if !entries {
            return Ok(());
        }
        let mut m = item.json(utf8);
        m.insert("change".into(), json!(change));
        match (change, before) {
            ("changed", Some(before)) => {
                m.insert("before".into(), before.value_json(utf8));
                m.insert("after".into(), item.value_json(utf8));
            }
            _ => {
                m.insert("value".into(), item.value_json(utf8));
            }
        }
        writeln!(std::io::stdout().lock(), "{}", Value::Object(m))
    };
    for (k, item) in &old {
        let c = counts.entry(item.state.clone()).or_default();
        match new.get(k) {
            None => {
                c.removed += 1;
                line("removed", item, None)?;
            }
            Some(now) if now.value != item.value => {
                c.changed += 1;
                line("changed", now, Some(item))?;
            }
            Some(_) => c.unchanged += 1,
        }
    }
    for (k, item) in &new {
        if !old.contains_key(k) {
            counts.entry(item.state.clone()).or_default().added += 1;
            line("added", item, None)?;
        }
    }
    let mut differs = false;
    let mut out = std::io::stdout().lock();
    for (state, c) in &counts {
        differs |= c.added + c.removed + c.changed > 0;
        writeln!(
            out,
            "{}",
            json!({
                "state": state,
                "added": c.added,
                "removed": c.removed,
                "changed": c.changed,
                "unchanged": c.unchanged,
            })
        )?;
    }
    Ok(if differs {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
