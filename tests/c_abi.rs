//! The C ABI from the outside: the committed header is fresh, compiles alone as C99
//! and C++17, and the C and C++ programs in tests/c and tests/cpp — compiled with
//! all warnings as errors and linked against both libstatebackend.so and
//! libstatebackend.a — pass, also under valgrind with zero errors and leaks.
//!
//! Needs `cc` and `c++`; the test fails (it does not skip) if they are missing.

#[cfg(feature = "remote")]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const C_FLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-g"];
const CXX_FLAGS: &[&str] = &[
    "-std=c++17",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-g",
];
/// What the Rust standard library and RocksDB (C++) need from the system when the
/// static library is linked (`rustc --print native-static-libs`, plus libstdc++).
const STATIC_SYSTEM_LIBS: &[&str] = &[
    "-lstdc++",
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/release (or the profile directory this test was built in): the
/// directory of the test executable's parent `deps` directory.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    let dir = deps.parent().expect("profile dir").to_path_buf();
    for lib in ["libstatebackend.so", "libstatebackend.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} missing: run `cargo build --release --lib` first (scripts/test does)",
            dir.join(lib).display()
        );
    }
    dir
}

fn out_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("c_abi")
        .tempdir()
        .expect("temp dir")
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{shown} failed ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    stdout
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Link {
    Shared,
    Static,
}

/// Compiles `sources` into `exe`, linked against the shared or static library.
fn build(compiler: &str, flags: &[&str], sources: &[PathBuf], link: Link, exe: &Path) {
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(root().join("include"))
        .arg("-I")
        .arg(root().join("tests/c"))
        .args(sources)
        .arg("-o")
        .arg(exe);
    match link {
        Link::Shared => {
            cmd.arg("-L")
                .arg(&lib)
                .arg("-lstatebackend")
                .arg(format!("-Wl,-rpath,{}", lib.display()))
                .arg("-lpthread");
        }
        Link::Static => {
            cmd.arg(lib.join("libstatebackend.a"))
                .arg("-Wl,--gc-sections")
                .args(STATIC_SYSTEM_LIBS);
        }
    }
    run(&mut cmd);
    if link == Link::Shared {
        // Make sure the shared build really loads the .so (and not a static copy).
        let ldd = run(Command::new("ldd").arg(exe));
        assert!(ldd.contains("libstatebackend.so"), "{ldd}");
    }
}

fn vectors() -> PathBuf {
    root().join("tests/data/flink_keygroups.csv")
}

/// Runs a test program; it prints "<name>: ALL PASSED" when every check passed.
fn run_program(exe: &Path, work: &Path, name: &str, wrapper: Option<&[&str]>) -> String {
    std::fs::create_dir_all(work).unwrap();
    let mut cmd = match wrapper {
        Some(w) => {
            let mut c = Command::new(w[0]);
            c.args(&w[1..]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg(work).arg(vectors());
    let stdout = run(&mut cmd);
    assert!(stdout.contains(&format!("{name}: ALL PASSED")), "{stdout}");
    println!("{stdout}");
    stdout
}

fn c_program(name: &str) -> Vec<PathBuf> {
    vec![root().join(format!("tests/c/{name}.c"))]
}

#[test]
fn committed_header_matches_a_fresh_generation() {
    let fresh = Path::new(env!("OUT_DIR")).join("statebackend.h");
    let fresh = std::fs::read_to_string(&fresh).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build.rs did not generate the header (see its warnings)",
            fresh.display()
        )
    });
    let committed = std::fs::read_to_string(root().join("include/statebackend.h"))
        .expect("include/statebackend.h");
    assert!(
        fresh == committed,
        "include/statebackend.h is stale: regenerate it with \
         `STATEBACKEND_UPDATE_HEADER=1 cargo build --release` and commit it"
    );
}

#[test]
fn header_compiles_alone_as_c99_and_cxx17() {
    let dir = out_dir();
    for (compiler, flags, file) in [("cc", C_FLAGS, "alone.c"), ("c++", CXX_FLAGS, "alone.cpp")] {
        let src = dir.path().join(file);
        std::fs::write(&src, "#include \"statebackend.h\"\n").unwrap();
        run(Command::new(compiler)
            .args(flags)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(root().join("include"))
            .arg(&src));
    }
}

#[test]
fn c_api_test_shared_and_static() {
    let dir = out_dir();
    for link in [Link::Shared, Link::Static] {
        let exe = dir.path().join(format!("test_api_{link:?}"));
        build("cc", C_FLAGS, &c_program("test_api"), link, &exe);
        run_program(
            &exe,
            &dir.path().join(format!("work_{link:?}")),
            "test_api",
            None,
        );
    }
}

#[test]
fn c_misuse_matrix_shared_and_static() {
    let dir = out_dir();
    for link in [Link::Shared, Link::Static] {
        let exe = dir.path().join(format!("test_misuse_{link:?}"));
        build("cc", C_FLAGS, &c_program("test_misuse"), link, &exe);
        let out = run_program(
            &exe,
            &dir.path().join(format!("work_{link:?}")),
            "test_misuse",
            None,
        );
        let cases: usize = out
            .lines()
            .find_map(|l| l.strip_prefix("test_misuse: bad-input cases: "))
            .and_then(|n| n.trim().parse().ok())
            .expect("the program reports its case count");
        assert!(cases >= 40, "only {cases} bad-input cases");
    }
}

#[test]
fn cxx_api_test_shared_and_static() {
    let dir = out_dir();
    for link in [Link::Shared, Link::Static] {
        let exe = dir.path().join(format!("test_cpp_{link:?}"));
        build(
            "c++",
            CXX_FLAGS,
            &[root().join("tests/cpp/test_api.cpp")],
            link,
            &exe,
        );
        run_program(
            &exe,
            &dir.path().join(format!("work_{link:?}")),
            "test_cpp",
            None,
        );
    }
}

#[test]
fn c_tests_are_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("valgrind is not installed: memory check skipped");
        return;
    }
    let dir = out_dir();
    let valgrind: &[&str] = &[
        "valgrind",
        "--quiet",
        "--error-exitcode=1",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect,possible",
        "--errors-for-leak-kinds=definite,indirect,possible",
    ];
    for name in ["test_api", "test_misuse"] {
        let exe = dir.path().join(name);
        build("cc", C_FLAGS, &c_program(name), Link::Shared, &exe);
        run_program(
            &exe,
            &dir.path().join(format!("work_{name}")),
            name,
            Some(valgrind),
        );
    }
}

/// examples/c/wordcount.c: killed mid-run (SIGKILL) and restarted from its last
/// checkpoint, it prints exactly what an uninterrupted run prints.
#[test]
fn wordcount_example_recovers_exactly_once() {
    let dir = out_dir();
    let crashed = dir.path().join("crashed").display().to_string();
    wordcount_recovers(&dir, &crashed, &[]);
}

/// The same with checkpoints in S3 (a moto server on 127.0.0.1), reached through
/// the AWS environment variables.
#[cfg(feature = "remote")]
#[test]
fn wordcount_example_recovers_exactly_once_from_s3() {
    let moto = common::s3::Moto::shared();
    let dir = out_dir();
    wordcount_recovers(&dir, &moto.url("wordcount"), &moto.env());
}

fn wordcount_recovers(dir: &tempfile::TempDir, checkpoints: &str, env: &[(&str, String)]) {
    let exe = dir.path().join("wordcount");
    build(
        "cc",
        C_FLAGS,
        &[root().join("examples/c/wordcount.c")],
        Link::Shared,
        &exe,
    );
    let args = ["--records", "20000", "--checkpoint-every", "1500"];
    let clean = run(Command::new(&exe).arg(dir.path().join("clean")).args(args));
    assert!(clean.lines().count() > 1000, "{clean}");

    let wordcount = || {
        let mut cmd = Command::new(&exe);
        cmd.arg(checkpoints).args(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd
    };
    let out = wordcount()
        .args(["--crash-after", "7777"])
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let resumed = wordcount().output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming at record 7500"), "{stderr}");
    assert!(String::from_utf8_lossy(&resumed.stdout) == clean);
}

/// scripts/install-c.sh lays out header, libraries and statebackend.pc; the CMake
/// example builds against that prefix through pkg-config, shared and static.
#[test]
fn install_layout_and_cmake_consumer() {
    for tool in ["cmake", "pkg-config"] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("{tool} is not installed: CMake consumer check skipped");
            return;
        }
    }
    let dir = out_dir();
    let prefix = dir.path().join("prefix");
    run(Command::new(root().join("scripts/install-c.sh"))
        .arg(&prefix)
        .env("STATEBACKEND_LIB_DIR", lib_dir()));
    for file in [
        "include/statebackend.h",
        "lib/libstatebackend.so",
        "lib/libstatebackend.a",
        "lib/pkgconfig/statebackend.pc",
    ] {
        assert!(prefix.join(file).exists(), "{file} not installed");
    }
    let pc_path = prefix.join("lib/pkgconfig");
    for static_link in ["OFF", "ON"] {
        let build_dir = dir.path().join(format!("build-{static_link}"));
        run(Command::new("cmake")
            .arg("-S")
            .arg(root().join("examples/c"))
            .arg("-B")
            .arg(&build_dir)
            .arg(format!("-DSTATEBACKEND_STATIC={static_link}"))
            .env("PKG_CONFIG_PATH", &pc_path));
        run(Command::new("cmake").arg("--build").arg(&build_dir));
        let out = run(Command::new(build_dir.join("wordcount"))
            .arg(dir.path().join(format!("work-{static_link}")))
            .args(["--records", "3000"]));
        assert!(out.starts_with("window 0-1000 "), "{out}");
    }
}
