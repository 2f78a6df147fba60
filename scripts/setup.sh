# Sourced by scripts/test and scripts/demo: installs what a fresh machine lacks.
# Needs root (or sudo) only when something is missing.

need_pkgs=()
# librocksdb-sys generates its bindings with bindgen, which loads libclang at build time.
if ! compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null && ! ldconfig -p 2>/dev/null | grep -q 'libclang\.so'; then
  need_pkgs+=(libclang-dev)
fi
command -v c++ >/dev/null || need_pkgs+=(g++)
# The C ABI tests run under valgrind and build the CMake example through pkg-config.
command -v valgrind >/dev/null || need_pkgs+=(valgrind)
command -v cmake >/dev/null || need_pkgs+=(cmake)
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v python3 >/dev/null || need_pkgs+=(python3)
# The Maven build strips debug info from the library it packs into the jar.
command -v strip >/dev/null || need_pkgs+=(binutils)
if [ "${STATEBACKEND_NEED_JAVA:-0}" = 1 ]; then
  command -v mvn >/dev/null || need_pkgs+=(maven)
  command -v javac >/dev/null || need_pkgs+=(openjdk-17-jdk-headless)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "==> installing ${need_pkgs[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo is not installed: install Rust from https://rustup.rs first" >&2
  exit 1
fi

# Cargo and Maven share this target directory; everything is built in release mode
# so librocksdb-sys is compiled once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

# The remote-storage tests run a real S3-compatible server: moto, from PyPI, in a
# virtual environment of its own under the target directory.
export STATEBACKEND_PYTHON="$CARGO_TARGET_DIR/moto-venv/bin/python"
if [ "${STATEBACKEND_NEED_S3:-0}" = 1 ] && ! "$STATEBACKEND_PYTHON" -c 'import moto, boto3, flask' 2>/dev/null; then
  echo "==> installing moto (S3 test server) into $CARGO_TARGET_DIR/moto-venv"
  if ! python3 -m venv "$CARGO_TARGET_DIR/moto-venv" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$CARGO_TARGET_DIR/moto-venv"
  fi
  "$STATEBACKEND_PYTHON" -m pip install -q --disable-pip-version-check "moto[server]==5.2.5" "boto3==1.44.5"
fi
