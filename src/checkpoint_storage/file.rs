//! Checkpoints in a local directory (`file://` URLs).
//!
//! Layout: `<root>/chk-<id>/<name>`. Every object is written to a temporary file in
//! the same directory, fsynced, renamed to its final name, and the directory fsynced,
//! so a crash at any instant leaves either the whole object or no object.

use super::{CheckpointStorage, CheckpointWriter};
use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Local-filesystem checkpoint storage rooted at a directory.
#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
}

/// Suffix of temporary files; they never count as checkpoint objects.
pub const TEMP_MARKER: &str = ".inprogress-";

impl FileStorage {
    /// Storage under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStorage { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/chk-<id>`.
    pub fn checkpoint_dir(&self, checkpoint_id: u64) -> PathBuf {
        self.root.join(format!("chk-{checkpoint_id}"))
    }

    /// Every checkpoint directory under the root, ascending by id.
    pub fn checkpoint_dirs(&self) -> Result<Vec<(u64, PathBuf)>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.root, e))?;
            let name = entry.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                dirs.push((id, entry.path()));
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

fn objects_with_prefix(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            found.push(entry.path());
        }
    }
    Ok(found)
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl CheckpointStorage for FileStorage {
    fn create(&self, checkpoint_id: u64, name: &str) -> Result<Box<dyn CheckpointWriter>> {
        Ok(Box::new(AtomicFile::create(
            &self.checkpoint_dir(checkpoint_id).join(name),
        )?))
    }

    fn discard(&self, checkpoint_id: u64, prefix: &str) -> Result<()> {
        let dir = self.checkpoint_dir(checkpoint_id);
        for path in objects_with_prefix(&dir, prefix)? {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        // Fails harmlessly while other instances' objects are still in the directory.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    fn checkpoints_with(&self, prefix: &str) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for (id, dir) in self.checkpoint_dirs()? {
            if !objects_with_prefix(&dir, prefix)?.is_empty() {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn location(&self, checkpoint_id: u64, name: &str) -> String {
        self.checkpoint_dir(checkpoint_id)
            .join(name)
            .display()
            .to_string()
    }

    fn checkpoint_ids(&self) -> Result<Vec<u64>> {
        Ok(self
            .checkpoint_dirs()?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    fn list(&self, checkpoint_id: u64) -> Result<Vec<String>> {
        let mut names: Vec<String> = objects_with_prefix(&self.checkpoint_dir(checkpoint_id), "")?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .filter(|n| !n.contains(TEMP_MARKER))
            .collect();
        names.sort();
        Ok(names)
    }

    fn read(&self, checkpoint_id: u64, name: &str) -> Result<Vec<u8>> {
        let path = self.checkpoint_dir(checkpoint_id).join(name);
        fs::read(&path).map_err(|e| Error::io(path, e))
    }

    fn modified(&self, checkpoint_id: u64, name: &str) -> Result<Option<std::time::SystemTime>> {
        let path = self.checkpoint_dir(checkpoint_id).join(name);
        let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        Ok(meta.modified().ok())
    }

    fn create_shared(&self, name: &str) -> Result<Box<dyn CheckpointWriter>> {
        Ok(Box::new(AtomicFile::create(&self.shared_path(name)?)?))
    }

    fn discard_shared(&self, name: &str) -> Result<()> {
        let path = self.shared_path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn list_shared(&self, dir: &str) -> Result<Vec<String>> {
        let path = self.shared_path(dir)?;
        let mut names = Vec::new();
        for p in objects_with_prefix(&path, "")? {
            if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                names.push(format!("{dir}/{n}"));
            }
        }
        names.sort();
        Ok(names)
    }
}

impl FileStorage {
    /// `<root>/shared/<name>`, refusing names that would leave the shared directory.
    fn shared_path(&self, name: &str) -> Result<PathBuf> {
        super::check_shared_name(name)?;
        Ok(self.root.join(SHARED_DIR).join(name))
    }
}

/// Directory of shared objects under the checkpoint root.
pub const SHARED_DIR: &str = "shared";

/// A file that appears under its final name only when committed.
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Creates the parent directories and a temporary file beside `dest`.
    pub fn create(dest: &Path) -> Result<Self> {
        let dir = dest
            .parent()
            .ok_or_else(|| Error::invalid(format!("{} has no parent directory", dest.display())))?;
        create_dir_durably(dir)?;
        let file_name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::invalid(format!("{} has no file name", dest.display())))?;
        let temp = dir.join(format!(
            "{file_name}{TEMP_MARKER}{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&temp, e))?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            file: Some(file),
        })
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl CheckpointWriter for AtomicFile {
    fn commit(mut self: Box<Self>) -> Result<String> {
        let file = self.file.take().expect("not yet committed");
        file.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        drop(file);
        fs::rename(&self.temp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        sync_dir(self.dest.parent().expect("checked at create"))?;
        Ok(self.dest.display().to_string())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// `mkdir -p` that also fsyncs each created directory's parent, so the new entries
/// survive a crash.
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(dir.parent().unwrap_or(Path::new("/"))),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// fsync of a directory, which makes renames and creations in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}
