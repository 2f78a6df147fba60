//! The `native` declarations of `io.statebackend.internal.NativeBridge` against the
//! JNI functions of src/ffi/jni/: the same methods, each with the same parameter
//! and return types, and the same constants. JNI binds by name only, so a
//! signature that drifts on one side would otherwise fail at run time (or read
//! garbage) instead of here.

use std::collections::BTreeMap;
use std::path::Path;

const JAVA: &str = "java/flink-common/src/main/java/io/statebackend/internal/NativeBridge.java";
const PREFIX: &str = "Java_io_statebackend_internal_NativeBridge_";

/// A method: parameter types and return type, as written on its side.
#[derive(Debug)]
struct Signature {
    params: Vec<String>,
    ret: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The exported functions of the JNI bridge, by Java method name, without the
/// environment and class parameters every one of them takes first.
fn rust_side() -> BTreeMap<String, Signature> {
    let mut out = BTreeMap::new();
    let dir = root().join("src/ffi/jni");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(&format!("fn {PREFIX}")) {
            rest = &rest[at + 3 + PREFIX.len()..];
            let name_end = rest.find(['<', '(']).unwrap();
            let name = rest[..name_end].to_string();
            let open = rest.find('(').unwrap();
            let close = rest.find("\n)").expect("parameters end with a line `)`");
            let params: Vec<String> = rest[open + 1..close]
                .split(",\n")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (_, ty) = p.split_once(": ").unwrap_or_else(|| panic!("{name}: {p}"));
                    ty.trim_end_matches(',').to_string()
                })
                .collect();
            assert_eq!(
                params[..2],
                ["EnvUnowned<'l>".to_string(), "JClass<'l>".to_string()],
                "{name} takes the environment and the class first"
            );
            let tail = &rest[close + 2..rest[close..].find('{').unwrap() + close];
            let ret = tail
                .trim()
                .strip_prefix("->")
                .unwrap_or("")
                .trim()
                .to_string();
            let previous = out.insert(
                name.clone(),
                Signature {
                    params: params[2..].to_vec(),
                    ret,
                },
            );
            assert!(previous.is_none(), "{name} is exported twice");
        }
    }
    out
}

/// The `static native` methods of NativeBridge.java.
fn java_side() -> BTreeMap<String, Signature> {
    let text = std::fs::read_to_string(root().join(JAVA)).unwrap();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = BTreeMap::new();
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("static native ") {
        rest = &rest[at + "static native ".len()..];
        let open = rest.find('(').unwrap();
        let (ret, name) = rest[..open].trim().rsplit_once(' ').unwrap();
        let close = rest.find(')').unwrap();
        let params = rest[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.rsplit_once(' ').unwrap().0.to_string())
            .collect();
        out.insert(
            name.to_string(),
            Signature {
                params,
                ret: ret.to_string(),
            },
        );
        rest = &rest[close..];
    }
    out
}

/// Whether the Java type `java` is what the JNI type `rust` receives or returns.
fn matches(rust: &str, java: &str) -> bool {
    let is_object = |t: &str| {
        !t.ends_with("[]")
            && !matches!(
                t,
                "long"
                    | "int"
                    | "boolean"
                    | "byte"
                    | "short"
                    | "char"
                    | "float"
                    | "double"
                    | "void"
            )
    };
    match rust {
        "" => java == "void",
        "jlong" => java == "long",
        "jdouble" => java == "double",
        "jint" => java == "int",
        "jboolean" => java == "boolean",
        "JString<'l>" => java == "String",
        "JByteArray<'l>" => java == "byte[]",
        "JLongArray<'l>" => java == "long[]",
        "JByteBuffer<'l>" => java == "ByteBuffer",
        "JObjectArray<'l, JString<'l>>" => java == "String[]",
        "JObjectArray<'l>" => java.strip_suffix("[]").is_some_and(is_object),
        "JObject<'l>" => is_object(java),
        other => panic!("no Java type known for the JNI type {other}: add it here"),
    }
}

#[test]
fn native_declarations_match_the_jni_functions() {
    let rust = rust_side();
    let java = java_side();
    assert!(rust.len() > 30, "found {} JNI functions", rust.len());
    let only_rust: Vec<_> = rust.keys().filter(|n| !java.contains_key(*n)).collect();
    let only_java: Vec<_> = java.keys().filter(|n| !rust.contains_key(*n)).collect();
    assert!(
        only_rust.is_empty() && only_java.is_empty(),
        "exported but not declared in {JAVA}: {only_rust:?}; declared but not exported: {only_java:?}"
    );
    for (name, r) in &rust {
        let j = &java[name];
        assert_eq!(
            r.params.len(),
            j.params.len(),
            "{name}: {:?} in Rust, {:?} in Java",
            r.params,
            j.params
        );
        for (i, (rt, jt)) in r.params.iter().zip(&j.params).enumerate() {
            assert!(
                matches(rt, jt),
                "{name}: parameter {i} is {rt} in Rust, {jt} in Java"
            );
        }
        assert!(
            matches(&r.ret, &j.ret),
            "{name}: returns {:?} in Rust, {} in Java",
            r.ret,
            j.ret
        );
    }
}

#[test]
fn java_constants_are_the_cores() {
    let text = std::fs::read_to_string(root().join(JAVA)).unwrap();
    let constant = |name: &str| -> i64 {
        let decl = format!("static final int {name} = ");
        let at = text
            .find(&decl)
            .unwrap_or_else(|| panic!("{name} in {JAVA}"))
            + decl.len();
        text[at..text[at..].find(';').unwrap() + at]
            .trim()
            .parse()
            .unwrap()
    };
    use statebackend::StateKind;
    for (name, kind) in [
        ("KIND_VALUE", StateKind::Value),
        ("KIND_LIST", StateKind::List),
        ("KIND_MAP", StateKind::Map),
        ("KIND_SORTED_SET", StateKind::SortedSet),
    ] {
        assert_eq!(constant(name), kind as u8 as i64, "{name}");
    }
    assert_eq!(
        constant("ABSENT"),
        i64::from(statebackend::ffi::jni::ABSENT)
    );
    assert_eq!(
        constant("METRICS_HEADER"),
        statebackend::metrics::ENCODED_HEADER as i64
    );
    assert_eq!(
        constant("METRICS_PER_STATE"),
        statebackend::metrics::ENCODED_PER_STATE as i64
    );
}

#[test]
fn the_parsers_see_what_they_should() {
    // A drifted declaration must be caught: the comparison sees through formatting.
    assert!(matches("JObjectArray<'l>", "RestoreSource[]"));
    assert!(!matches("JObjectArray<'l>", "long[]"));
    assert!(!matches("jint", "long"));
    assert!(!matches("", "int"));
    let java = java_side();
    assert_eq!(java["open"].params[0], "String");
    assert_eq!(java["valueGet"].ret, "int");
    let rust = rust_side();
    assert_eq!(rust["open"].params[0], "JString<'l>");
    assert_eq!(rust["close"].ret, "");
}
