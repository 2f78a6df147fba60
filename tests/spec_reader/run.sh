#!/usr/bin/env bash
# End-to-end check of docs/snapshot-format.md: an independent Python reader
# (read_snapshot.py, written from the spec alone) must read the demo's
# checkpoints, agree with the demo's result.txt, and reject corruption at the
# offsets the spec prescribes.  The demo has no RocksDB-incremental option, so
# the incremental (DbFiles) path is exercised on a synthetic checkpoint built by
# make_incremental.py (and on any incremental manifest the demo might write).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DEMO="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/demo"
READER="$HERE/read_snapshot.py"
export PYTHONDONTWRITEBYTECODE=1

# Build the demo first (cheap when it is current).
(cd "$ROOT" && cargo build --release --example demo) || { echo "cargo build failed"; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# flip_byte FILE OFFSET: xor one byte with 0xff in place
flip_byte() {
    python3 - "$1" "$2" <<'PY'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0xFF]))
PY
}

# expect_corrupt NAME FILE [WANT_FILE WANT_OFFSET]: reader must exit 1, print
# nothing on stdout and exactly one `corrupted: ` line on stderr (naming
# WANT_FILE at WANT_OFFSET when given)
expect_corrupt() {
    local name="$1" file="$2" rc=0
    python3 "$READER" "$file" >"$TMP/c.out" 2>"$TMP/c.err" || rc=$?
    if [[ $rc -eq 1 && ! -s "$TMP/c.out" && $(wc -l <"$TMP/c.err") -eq 1 ]] \
        && grep -q '^corrupted: .* at offset [0-9][0-9]*: ' "$TMP/c.err" \
        && { [[ $# -lt 4 ]] || grep -qF "corrupted: $3 at offset $4: " "$TMP/c.err"; }; then
        pass "$name: $(sed "s|$TMP/||" "$TMP/c.err")"
    else
        fail "$name (rc=$rc${4+, want $3 at offset $4}): $(cat "$TMP/c.err")"
    fi
}

# 1. produce checkpoints
(cd "$ROOT" && "$DEMO" worker "$TMP/run" >"$TMP/demo.log" 2>&1) \
    || { cat "$TMP/demo.log"; echo "demo failed"; exit 1; }
# the newest checkpoint directory that has any manifest
CHK=""
for d in $(ls -d "$TMP"/run/checkpoints/chk-* | sort -t- -k2,2n); do
    compgen -G "$d/*.manifest" >/dev/null && CHK="$d"
done
[[ -n "$CHK" ]] || { echo "no checkpoint with a manifest"; exit 1; }
echo "newest checkpoint: $(basename "$CHK")"

# 2. read every manifest of the newest checkpoint
dumps=()
full_manifests=()
for m in "$CHK"/*.manifest; do
    d="$TMP/$(basename "$m").dump"
    if python3 "$READER" "$m" >"$d" 2>"$TMP/err"; then
        if grep -q '^files: ' "$d"; then
            pass "read incremental $(basename "$m"): $(tail -n 2 "$d" | tr '\n' ' ')"
        else
            pass "read $(basename "$m"): $(tail -n 1 "$d")"
            dumps+=("$d")
            full_manifests+=("$m")
        fi
    else
        fail "read $(basename "$m"): $(cat "$TMP/err")"
    fi
done

# 3. cross-check against the demo's own result
if [[ ${#dumps[@]} -gt 0 ]] \
    && python3 "$HERE/check_demo.py" "$TMP/run/result.txt" "${dumps[@]}" >"$TMP/check" 2>&1; then
    pass "$(cat "$TMP/check")"
else
    fail "check_demo: $(cat "$TMP/check" 2>/dev/null || echo 'no full snapshot')"
fi
[[ ${#full_manifests[@]} -gt 0 ]] || { echo "spec-reader: $passed passed, $((failed + 1)) failed"; exit 1; }

# 4. every other checkpoint still on disk reads cleanly too
for m in "$TMP"/run/checkpoints/chk-*/*.manifest; do
    [[ -e "$m" ]] || continue
    [[ "$(dirname "$m")" == "$CHK" ]] && continue
    if python3 "$READER" "$m" >/dev/null 2>"$TMP/err"; then
        pass "read $(basename "$(dirname "$m")")/$(basename "$m")"
    else
        fail "read $m: $(cat "$TMP/err")"
    fi
done

# 5. the same snapshot as an inline (manifest ‖ data stream) byte string
first_manifest="${full_manifests[0]}"
python3 "$HERE/make_inline.py" "$first_manifest" "$TMP/inline.snap"
if python3 "$READER" "$TMP/inline.snap" >"$TMP/inline.dump" 2>"$TMP/err" \
    && cmp -s "$TMP/inline.dump" "$TMP/$(basename "$first_manifest").dump"; then
    pass "inline snapshot gives the same dump"
else
    fail "inline snapshot: $(cat "$TMP/err")"
fi

# 5b. ... and as a single stream (data stream ‖ manifest ‖ trailer)
python3 "$HERE/make_inline.py" "$first_manifest" "$TMP/single.snap" stream
if python3 "$READER" "$TMP/single.snap" >"$TMP/single.dump" 2>"$TMP/err" \
    && cmp -s "$TMP/single.dump" "$TMP/$(basename "$first_manifest").dump"; then
    pass "single-stream snapshot gives the same dump"
else
    fail "single-stream snapshot: $(cat "$TMP/err")"
fi

# 6. corruption: one flipped byte in the middle of a data file
cp -r "$CHK" "$TMP/bad"
manifest="$TMP/bad/$(basename "$first_manifest")"
data="$TMP/bad/$(python3 -c '
import sys; sys.path.insert(0, sys.argv[1]); import read_snapshot as rs
p = sys.argv[2]; print(rs.read_manifest(p, open(p, "rb").read())[0]["keyed"]["file"])' "$HERE" "$manifest")"
size=$(stat -c %s "$data")
flip_byte "$data" $((size / 2))
expect_corrupt "flipped byte at $((size / 2)) of $(basename "$data")" "$manifest"
off=$(sed -n 's/.* at offset \([0-9]*\):.*/\1/p' "$TMP/c.err")
if [[ "$(cut -d' ' -f2 "$TMP/c.err")" == "$data" && -n "$off" && $off -ge 16 && $off -le $((size / 2)) ]]; then
    pass "damage reported in the data file at block offset $off <= $((size / 2))"
else
    fail "damage location: $(cat "$TMP/c.err")"
fi
flip_byte "$data" $((size / 2))   # restore

# 7. corruption at the offsets the spec prescribes
flip_byte "$data" 9
expect_corrupt "flipped data header byte" "$manifest" "$data" 0
flip_byte "$data" 9
cp "$data" "$TMP/data.orig"
truncate -s $((size - 1)) "$data"
expect_corrupt "data file truncated by one byte" "$manifest" "$data" $((size - 1))
cp "$TMP/data.orig" "$data"
printf 'x' >>"$data"
expect_corrupt "data file one byte too long" "$manifest" "$data" "$size"
cp "$TMP/data.orig" "$data"
rm "$data"
expect_corrupt "data file missing" "$manifest" "$data" 0
cp "$TMP/data.orig" "$data"
cp "$manifest" "$TMP/manifest.orig"
flip_byte "$manifest" 40
expect_corrupt "flipped manifest body byte" "$manifest" "$manifest" 20
cp "$TMP/manifest.orig" "$manifest"
flip_byte "$manifest" 8
expect_corrupt "flipped manifest version byte" "$manifest" "$manifest" 8
cp "$TMP/manifest.orig" "$manifest"
flip_byte "$manifest" 15
expect_corrupt "manifest body_len too large" "$manifest" "$manifest" 12
cp "$TMP/manifest.orig" "$manifest"
printf '\0' >>"$manifest"
expect_corrupt "byte after the manifest in a manifest file" "$manifest"
cp "$TMP/manifest.orig" "$manifest"
if python3 "$READER" "$manifest" >/dev/null 2>&1; then
    pass "restored copy reads cleanly again"
else
    fail "restored copy: $(python3 "$READER" "$manifest" 2>&1)"
fi
isize=$(stat -c %s "$TMP/inline.snap")
cp "$TMP/inline.snap" "$TMP/inline.orig"
flip_byte "$TMP/inline.snap" $((isize / 2))
expect_corrupt "flipped byte in inline snapshot" "$TMP/inline.snap"
cp "$TMP/inline.orig" "$TMP/inline.snap"
truncate -s $((isize - 1)) "$TMP/inline.snap"
expect_corrupt "inline snapshot truncated by one byte" "$TMP/inline.snap" "$TMP/inline.snap" $((isize - 1))

ssize=$(stat -c %s "$TMP/single.snap")
moff=$(python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); print(struct.unpack("<Q", d[-16:-8])[0])' "$TMP/single.snap")
cp "$TMP/single.snap" "$TMP/single.orig"
flip_byte "$TMP/single.snap" $((moff / 2))
expect_corrupt "flipped data byte in single stream" "$TMP/single.snap"
cp "$TMP/single.orig" "$TMP/single.snap"
flip_byte "$TMP/single.snap" $((moff + 30))
expect_corrupt "flipped manifest body byte in single stream" "$TMP/single.snap" "$TMP/single.snap" $((moff + 20))
cp "$TMP/single.orig" "$TMP/single.snap"
flip_byte "$TMP/single.snap" $((ssize - 1))
expect_corrupt "flipped trailer magic byte in single stream" "$TMP/single.snap"

# 8. incremental (DbFiles) manifest: a synthetic checkpoint (the demo has no
#    RocksDB-incremental option)
INC="$TMP/inc/checkpoints"
python3 "$HERE/make_incremental.py" "$first_manifest" "$INC" >"$TMP/inc.expect"
imanifest="$(head -n 1 "$TMP/inc.expect")"
tail -n +2 "$TMP/inc.expect" >"$TMP/inc.want"
if python3 "$READER" "$imanifest" >"$TMP/inc.out" 2>"$TMP/err" && cmp -s "$TMP/inc.out" "$TMP/inc.want"; then
    pass "synthetic incremental manifest: $(tail -n 2 "$TMP/inc.out" | tr '\n' ' ')"
else
    fail "synthetic incremental manifest: $(cat "$TMP/err") $(diff "$TMP/inc.want" "$TMP/inc.out" | head -n 5)"
fi
sst="$(ls "$INC"/shared/kg-*/000009.sst.*)"
flip_byte "$sst" $((1048576 + 1000))
expect_corrupt "flipped byte in the second MiB of a shared SST" "$imanifest" "$sst" 1048576
flip_byte "$sst" $((1048576 + 1000))
flip_byte "$sst" 5
expect_corrupt "flipped byte in the first MiB of a shared SST" "$imanifest" "$sst" 0
flip_byte "$sst" 5
priv="$(ls "$(dirname "$imanifest")"/*.db.MANIFEST-*)"
psize=$(stat -c %s "$priv")
truncate -s $((psize - 1)) "$priv"
expect_corrupt "private file truncated by one byte" "$imanifest" "$priv" $((psize - 1))
rm "$priv"
expect_corrupt "private file missing" "$imanifest" "$priv" 0
python3 "$HERE/make_incremental.py" "$first_manifest" "$TMP/inc2/checkpoints" dotdot >"$TMP/inc2.expect"
imanifest2="$(head -n 1 "$TMP/inc2.expect")"
expect_corrupt "shared name with a .. segment" "$imanifest2" "$imanifest2" 20
python3 "$HERE/make_incremental.py" "$first_manifest" "$TMP/inc3/checkpoints" chunks >"$TMP/inc3.expect"
imanifest3="$(head -n 1 "$TMP/inc3.expect")"
expect_corrupt "chunk_crcs one short" "$imanifest3" "$imanifest3" 20

echo "spec-reader: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
