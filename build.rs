//! Generates the C header include/statebackend.h from src/ffi/c.rs with cbindgen.
//!
//! The fresh header always goes to `$OUT_DIR/statebackend.h`; tests/c_abi.rs fails
//! when the committed include/statebackend.h differs from it. The committed header
//! is written only when it is missing or `STATEBACKEND_UPDATE_HEADER=1` is set, so
//! a build never silently hides a stale header, and a packaged crate (read-only
//! source) still builds.

use std::path::PathBuf;

fn main() {
    // Every file, not just the directory: a directory's own mtime does not change
    // when a file inside it is edited, and the header must follow every doc comment.
    rerun_if_changed_tree(std::path::Path::new("src/ffi"));
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=STATEBACKEND_UPDATE_HEADER");

    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let fresh = out_dir.join("statebackend.h");

    let config = match cbindgen::Config::from_file(root.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(e) => {
            println!("cargo:warning=cbindgen.toml: {e}; header not generated");
            return;
        }
    };
    let bindings = match cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/c.rs"))
        .generate()
    {
        Ok(bindings) => bindings,
        Err(e) => {
            println!("cargo:warning=cbindgen failed: {e}; header not generated");
            return;
        }
    };
    bindings.write_to_file(&fresh);

    let committed = root.join("include/statebackend.h");
    let update = std::env::var("STATEBACKEND_UPDATE_HEADER").is_ok_and(|v| v == "1");
    if update || !committed.exists() {
        let written = std::fs::create_dir_all(root.join("include"))
            .and_then(|()| std::fs::copy(&fresh, &committed));
        if let Err(e) = written {
            println!("cargo:warning=could not write {}: {e}", committed.display());
        }
    }
}

fn rerun_if_changed_tree(dir: &std::path::Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rerun_if_changed_tree(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
