#!/usr/bin/env python3
"""Independent reader for libstatebackend snapshots, written from
docs/snapshot-format.md alone (standard library only).

Usage: read_snapshot.py <manifest-file | inline snapshot | single-stream snapshot>

Full snapshot (keyed = Full): prints a canonical dump of every entry, then the
operator lists, then `entries: <N>`.

Incremental snapshot (keyed = Files): resolves every file of the RocksDB
checkpoint, checks its size and every 1 MiB chunk CRC32C, and prints
`file <name> <shared|private> <size>` per file (sorted), then `files: <N>` and
`bytes: <total>`.  The SST contents themselves are not decoded.

On any violation prints `corrupted: <file> at offset <n>: <reason>` to stderr
and exits 1.  Offsets count from the start of the named file (for an inline
snapshot, from the start of the byte string).
"""

import os
import struct
import sys

# ---------------------------------------------------------------- CRC32C --

def _make_table():
    poly = 0x82F63B78  # 0x1EDC6F41 reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_table()


def crc32c(data, crc=0):
    """CRC32C of `data`; pass a previous result as `crc` to continue it."""
    t = _CRC_TABLE
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# ---------------------------------------------------------------- errors --


class Corrupted(Exception):
    def __init__(self, file, offset, reason):
        super().__init__(reason)
        self.file = file
        self.offset = offset
        self.reason = reason


# --------------------------------------------------------------- helpers --

U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1


def read_varint(buf, pos, end, limit=U64_MAX):
    """Unsigned LEB128 in buf[pos:end]; at most 10 bytes. Returns (value, newpos)
    or raises ValueError with a reason."""
    value = 0
    shift = 0
    for i in range(10):
        if pos + i >= end:
            raise ValueError("truncated varint")
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if value > limit:
                raise ValueError("varint value %d out of range" % value)
            return value, pos + i + 1
    raise ValueError("varint longer than 10 bytes")


def read_bytes(buf, pos, end):
    n, pos = read_varint(buf, pos, end)
    if n > end - pos:
        raise ValueError("byte string of length %d does not fit (%d left)" % (n, end - pos))
    return bytes(buf[pos:pos + n]), pos + n


# -------------------------------------------------------------- manifest --

MANI_MAGIC = b"STBKMANI"
DATA_MAGIC = b"STBKDATA"
VERSION = 1
MANI_HEADER = 20  # magic 8 + version 4 + body_len 4 + body_crc 4
DATA_HEADER = 16  # magic 8 + version 4 + header_crc 4
TAIL_MAGIC = b"STBKTAIL"
TRAILER = 16      # single stream: manifest_offset u64le + magic 8
CHUNK = 1 << 20   # DbFile.chunk_crcs: one CRC32C per 1 MiB

BACKENDS = ["Memory", "Fs", "RocksDb"]
KINDS = ["value", "list", "map", "sorted set"]  # StateInfo.kind 0..3
TAGS = [1, 2, 3, 3]  # the record tag of each kind: a sorted set's elements are map records
DISTRIBUTIONS = ["EvenSplit", "Union"]
KEYED = ["Full", "Files"]
LOCATIONS = ["Inline", "File", "Stream"]
DB_LOCATIONS = ["Shared", "Private"]


def manifest_error(path, body, at, what, reason):
    """Every manifest checksum / decoding / consistency error is reported at
    the body's offset (20 from the manifest's start); the field's own file
    offset goes into the reason."""
    return Corrupted(path, body, "manifest body: %s (file offset %d): %s" % (what, at, reason))


class Postcard:
    """Minimal postcard decoder over the manifest body buf[start:end]."""

    def __init__(self, file, buf, start, end):
        self.file = file
        self.buf = buf
        self.body = start
        self.pos = start
        self.end = end

    def fail(self, what, reason, at=None):
        raise manifest_error(self.file, self.body, self.pos if at is None else at, what, reason)

    def varint(self, what, limit):
        at = self.pos
        try:
            v, self.pos = read_varint(self.buf, self.pos, self.end, limit)
        except ValueError as e:
            self.fail(what, str(e), at)
        return v

    def u32(self, what):
        return self.varint(what, U32_MAX)

    def u64(self, what):
        return self.varint(what, U64_MAX)

    def enum(self, what, names):
        at = self.pos
        idx = self.varint(what, U32_MAX)
        if idx >= len(names):
            self.fail(what, "unknown variant %d" % idx, at)
        return idx

    def byte_seq(self, what):
        at = self.pos
        try:
            v, self.pos = read_bytes(self.buf, self.pos, self.end)
        except ValueError as e:
            self.fail(what, str(e), at)
        return v

    def string(self, what):
        at = self.pos
        raw = self.byte_seq(what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(what, "invalid UTF-8", at)

    def seq_len(self, what, min_elem_size=1):
        at = self.pos
        n = self.varint(what + " count", U64_MAX)
        # every element takes at least min_elem_size bytes: reject absurd counts
        if n * min_elem_size > self.end - self.pos:
            self.fail(what, "count %d does not fit in the body" % n, at)
        return n


def bad_segments(name):
    """True if `name` is empty or has an empty, `.` or `..` path segment."""
    return any(s in ("", ".", "..") for s in name.split("/"))


def decode_full_data(p):
    keyed = {"kind": "Full"}
    loc = p.enum("keyed.Full.location", LOCATIONS)
    keyed["location"] = loc
    keyed["file"] = None
    if loc == 1:
        at = p.pos
        name = p.string("keyed.Full.location.File.name")
        if "/" in name or bad_segments(name):
            p.fail("keyed.Full.location.File.name", "invalid file name %r" % name, at)
        keyed["file"] = name
    keyed["size"] = p.u64("keyed.Full.size")
    keyed["crc32c"] = p.u32("keyed.Full.crc32c")
    offsets = []
    for i in range(p.seq_len("keyed.Full.key_group_offsets", 2)):
        at = p.pos
        kg = p.u32("keyed.Full.key_group_offsets[%d].key_group" % i)
        off = p.u64("keyed.Full.key_group_offsets[%d].offset" % i)
        offsets.append((kg, off, at))
    keyed["key_group_offsets"] = offsets
    sizes = []
    for i in range(p.seq_len("keyed.Full.state_sizes", 2)):
        at = p.pos
        sid = p.u32("keyed.Full.state_sizes[%d].state_id" % i)
        nbytes = p.u64("keyed.Full.state_sizes[%d].bytes" % i)
        sizes.append((sid, nbytes, at))
    keyed["state_sizes"] = sizes
    return keyed


def decode_db_files(p):
    files = []
    for i in range(p.seq_len("keyed.Files.files", 5)):
        what = "keyed.Files.files[%d]" % i
        f = {"at": p.pos}
        f["name"] = p.string(what + ".name")
        f["loc"] = p.enum(what + ".location", DB_LOCATIONS)
        f["loc_at"] = p.pos
        f["loc_name"] = p.string(what + ".location.%s.name" % DB_LOCATIONS[f["loc"]])
        f["size"] = p.u64(what + ".size")
        f["crc_at"] = p.pos
        f["chunk_crcs"] = [p.u32(what + ".chunk_crcs[%d]" % j)
                           for j in range(p.seq_len(what + ".chunk_crcs", 1))]
        files.append(f)
    uploaded = p.u64("keyed.Files.uploaded_bytes")
    return {"kind": "Files", "files": files, "uploaded_bytes": uploaded}


def decode_manifest_body(p):
    m = {}
    m["checkpoint_id"] = p.u64("checkpoint_id")
    m["backend"] = p.enum("backend", BACKENDS)
    m["max_parallelism"] = p.u32("max_parallelism")
    at = p.pos
    start = p.u32("key_group_range.start")
    end = p.u32("key_group_range.end")
    if start > end:
        p.fail("key_group_range", "start %d > end %d" % (start, end), at)
    if end >= m["max_parallelism"]:
        p.fail("key_group_range", "end %d >= max_parallelism %d" % (end, m["max_parallelism"]), at)
    m["key_group_range"] = (start, end)

    states = []
    for i in range(p.seq_len("states", 4)):
        at = p.pos
        sid = p.u32("states[%d].id" % i)
        if sid != i:
            p.fail("states[%d].id" % i, "id %d at position %d" % (sid, i), at)
        name = p.string("states[%d].name" % i)
        kind = p.enum("states[%d].kind" % i, KINDS)
        meta = p.byte_seq("states[%d].metadata" % i)
        states.append({"id": sid, "name": name, "kind": kind, "metadata": meta})
    m["states"] = states

    m["keyed_at"] = p.pos
    if p.enum("keyed", KEYED) == 0:
        m["keyed"] = decode_full_data(p)
    else:
        m["keyed"] = decode_db_files(p)

    ops = []
    for i in range(p.seq_len("operator_states", 3)):
        name = p.string("operator_states[%d].name" % i)
        dist = p.enum("operator_states[%d].distribution" % i, DISTRIBUTIONS)
        elems = [p.byte_seq("operator_states[%d].elements[%d]" % (i, j))
                 for j in range(p.seq_len("operator_states[%d].elements" % i, 1))]
        ops.append({"name": name, "distribution": dist, "elements": elems})
    m["operator_states"] = ops

    if p.pos != p.end:
        p.fail("body", "%d bytes left after operator_states" % (p.end - p.pos))
    return m


def read_manifest(path, raw, base=0, limit=None):
    """Decode the manifest starting at raw[base] (and ending by `limit`).
    Returns (manifest dict, manifest length in bytes)."""
    limit = len(raw) if limit is None else limit
    avail = limit - base
    if avail < 8 or raw[base:base + 8] != MANI_MAGIC:
        raise Corrupted(path, base, "bad manifest magic %r" % bytes(raw[base:min(base + 8, limit)]))
    if avail < 12:
        raise Corrupted(path, base + 8, "manifest version truncated")
    version = struct.unpack_from("<I", raw, base + 8)[0]
    if version != VERSION:
        raise Corrupted(path, base + 8, "unknown manifest version %d" % version)
    if avail < MANI_HEADER:
        raise Corrupted(path, base + 12, "manifest header truncated (%d bytes)" % avail)
    body_len, body_crc = struct.unpack_from("<II", raw, base + 12)
    if body_len > avail - MANI_HEADER:
        raise Corrupted(path, base + 12, "manifest body_len %d does not fit (%d bytes available)"
                        % (body_len, avail - MANI_HEADER))
    body_at = base + MANI_HEADER
    actual = crc32c(raw[body_at:body_at + body_len])
    if actual != body_crc:
        raise Corrupted(path, body_at, "manifest body CRC32C mismatch: stored %08x, computed %08x"
                        % (body_crc, actual))
    m = decode_manifest_body(Postcard(path, raw, body_at, body_at + body_len))
    m["body_at"] = body_at
    return m, MANI_HEADER + body_len


def check_full_manifest(path, m):
    """Step 1 cross-field checks of a Full manifest."""
    start, end = m["key_group_range"]
    keyed = m["keyed"]
    size = keyed["size"]
    prev = None
    for kg, off, at in keyed["key_group_offsets"]:
        what = "keyed.Full.key_group_offsets (key group %d)" % kg
        if not start <= kg <= end:
            raise manifest_error(path, m["body_at"], at, what, "outside key_group_range %d-%d" % (start, end))
        if off >= size:
            raise manifest_error(path, m["body_at"], at, what, "offset %d not below size %d" % (off, size))
        if off < DATA_HEADER:
            raise manifest_error(path, m["body_at"], at, what, "offset %d inside the data header" % off)
        if prev is not None and not (kg > prev[0] and off > prev[1]):
            raise manifest_error(path, m["body_at"], at, what, "not ascending in both key group and offset")
        prev = (kg, off)
    nstates = len(m["states"])
    seen = set()
    for sid, _, at in keyed["state_sizes"]:
        what = "keyed.Full.state_sizes (state %d)" % sid
        if sid >= nstates:
            raise manifest_error(path, m["body_at"], at, what, "unknown state")
        if sid in seen:
            raise manifest_error(path, m["body_at"], at, what, "listed twice")
        seen.add(sid)


# ----------------------------------------------------------- data stream --


def check_data_header(dfile, data, base):
    if len(data) < DATA_HEADER:
        raise Corrupted(dfile, base, "data header truncated")
    if data[0:8] != DATA_MAGIC:
        raise Corrupted(dfile, base, "bad data magic %r" % bytes(data[0:8]))
    version, hcrc = struct.unpack_from("<II", data, 8)
    if crc32c(data[0:12]) != hcrc:
        raise Corrupted(dfile, base, "data header CRC32C mismatch")
    if version != VERSION:
        raise Corrupted(dfile, base + 8, "unknown data version %d" % version)


class Restore:
    """Everything decoded so far from the data stream."""

    def __init__(self, states):
        self.states = states
        self.entries = []
        self.state_bytes = {}
        self.seen = set()          # (state, key, ns[, user key]) must be unique
        self.last = (None, -1)     # (key group, state id) of the previous record


def decode_records(dfile, data, base, kg, pstart, pend, r):
    """Decode records in data[pstart:pend] (after the key_group field)."""
    pos = pstart
    while pos < pend:
        rec = pos
        try:
            tag = data[pos]
            pos += 1
            sid, pos = read_varint(data, pos, pend, U32_MAX)
            if sid >= len(r.states):
                raise ValueError("unknown state id %d" % sid)
            st = r.states[sid]
            if tag not in (1, 2, 3):
                raise ValueError("unknown record tag %d" % tag)
            if tag != TAGS[st["kind"]]:
                raise ValueError("tag %d does not match kind %s of state %d (%s)"
                                 % (tag, KINDS[st["kind"]], sid, st["name"]))
            key, pos = read_bytes(data, pos, pend)
            ns, pos = read_bytes(data, pos, pend)
            head = "kg=%d state=%s kind=%s key=%s ns=%s" % (
                kg, st["name"], KINDS[st["kind"]], key.hex(), ns.hex())
            ident = (sid, key, ns)
            if tag == 1:
                value, pos = read_bytes(data, pos, pend)
                line = "%s value=%s" % (head, value.hex())
            elif tag == 2:
                enc, pos = read_bytes(data, pos, pend)
                if not enc:
                    raise ValueError("empty list stored (empty lists are not stored)")
                elems = []
                i = 0
                while i < len(enc):
                    try:
                        e, i = read_bytes(enc, i, len(enc))
                    except ValueError as err:
                        raise ValueError("malformed list encoding: %s" % err)
                    elems.append(e.hex())
                line = "%s list=[%s]" % (head, ",".join(elems))
            else:
                ukey, pos = read_bytes(data, pos, pend)
                value, pos = read_bytes(data, pos, pend)
                ident = (sid, key, ns, ukey)
                line = "%s ukey=%s value=%s" % (head, ukey.hex(), value.hex())
            if ident in r.seen:
                raise ValueError("duplicate entry for state %d key=%s ns=%s%s"
                                 % (sid, key.hex(), ns.hex(),
                                    " ukey=" + ident[3].hex() if len(ident) == 4 else ""))
            # within a key group, records appear state by state in ascending state id
            if r.last[0] == kg and sid < r.last[1]:
                raise ValueError("record of state %d after state %d" % (sid, r.last[1]))
        except ValueError as err:
            raise Corrupted(dfile, base + rec, "record in key group %d: %s" % (kg, err))
        r.seen.add(ident)
        r.entries.append(line)
        r.state_bytes[sid] = r.state_bytes.get(sid, 0) + (pos - rec)
        r.last = (kg, sid)


def walk_key_group(dfile, data, base, kg, off, r):
    """Read the blocks of key group `kg` starting at `off`; return the offset
    where reading stopped (end of stream or first block of another key group)."""
    size = len(data)
    pos = off
    first = True
    while pos < size:
        if size - pos < 8:
            raise Corrupted(dfile, base + pos, "block header truncated")
        plen, pcrc = struct.unpack_from("<II", data, pos)
        if plen < 5:
            raise Corrupted(dfile, base + pos, "payload_len %d < 5" % plen)
        if plen > size - pos - 8:
            raise Corrupted(dfile, base + pos, "payload_len %d does not fit in the stream" % plen)
        pstart = pos + 8
        pend = pstart + plen
        if crc32c(data[pstart:pend]) != pcrc:
            raise Corrupted(dfile, base + pos, "block payload CRC32C mismatch")
        bkg = struct.unpack_from("<I", data, pstart)[0]
        if first:
            if bkg != kg:
                raise Corrupted(dfile, base + pos, "first block carries key group %d, expected %d"
                                % (bkg, kg))
            first = False
        elif bkg != kg:
            if bkg < kg:
                raise Corrupted(dfile, base + pos, "block of key group %d after key group %d"
                                % (bkg, kg))
            break
        decode_records(dfile, data, base, kg, pstart + 4, pend, r)
        pos = pend
    return pos


def read_full(path, raw, m, mlen, single_stream=False):
    """Steps 2-5 for a Full snapshot; returns the output lines.  `raw` is the
    manifest file or inline snapshot, or (single_stream) the data stream part
    of a single-stream snapshot."""
    check_full_manifest(path, m)
    keyed = m["keyed"]
    loc = keyed["location"]
    if (loc == 2) != single_stream:
        raise manifest_error(path, m["body_at"], m["keyed_at"], "keyed.Full.location",
                             "location %s in %s" % (LOCATIONS[loc], "a single-stream snapshot"
                                                    if single_stream else "a manifest-first file"))

    # Step 2: locate the data stream.
    if loc == 2:
        dfile = path
        base = 0
        data = memoryview(raw)
    elif loc == 0:
        dfile = path
        base = mlen
        data = memoryview(raw)[mlen:]
    else:
        if len(raw) != mlen:
            raise Corrupted(path, mlen, "%d bytes after the manifest in a manifest file"
                            % (len(raw) - mlen))
        dfile = os.path.join(os.path.dirname(path), keyed["file"])
        base = 0
        try:
            with open(dfile, "rb") as f:
                data = memoryview(f.read())
        except OSError as e:
            raise Corrupted(dfile, 0, "data file named in the manifest unreadable: %s" % e.strerror)
    if len(data) != keyed["size"]:
        raise Corrupted(dfile, base + min(len(data), keyed["size"]),
                        "data stream is %d bytes, manifest says %d (truncated or replaced)"
                        % (len(data), keyed["size"]))

    # Step 3: data header.
    check_data_header(dfile, data, base)

    # Steps 4/5: every key group of key_group_offsets; the blocks must tile
    # the stream from the header to the end, and the listed key groups must be
    # exactly those that have blocks.
    r = Restore(m["states"])
    expected = DATA_HEADER
    for kg, off, at in keyed["key_group_offsets"]:
        if off != expected:
            raise Corrupted(dfile, base + expected,
                            "key group %d starts at %d but the previous blocks end at %d"
                            % (kg, off, expected))
        expected = walk_key_group(dfile, data, base, kg, off, r)
    if expected != len(data):
        raise Corrupted(dfile, base + expected, "blocks not listed in key_group_offsets")

    # state_sizes (informational, but a conforming writer gets it right):
    # every state with records is listed with the total length of its records.
    listed = {sid: (n, at) for sid, n, at in keyed["state_sizes"]}
    for sid, st in enumerate(m["states"]):
        got = r.state_bytes.get(sid, 0)
        want, at = listed.get(sid, (0, m["keyed_at"]))
        if got != want:
            raise manifest_error(path, m["body_at"], at, "keyed.Full.state_sizes",
                                 "state %d (%s): records take %d bytes, state_sizes says %s"
                                 % (sid, st["name"], got, want if sid in listed else "nothing"))

    # End-to-end CRC over the whole data stream (after the per-block checks,
    # so that a damaged block is reported at its own offset).
    whole = crc32c(data)
    if whole != keyed["crc32c"]:
        raise Corrupted(dfile, base, "whole-stream CRC32C mismatch: manifest %08x, computed %08x"
                        % (keyed["crc32c"], whole))

    lines = sorted(r.entries)
    for op in m["operator_states"]:
        lines.append("operator %s %s [%s]" % (op["name"], DISTRIBUTIONS[op["distribution"]],
                                             ",".join(e.hex() for e in op["elements"])))
    lines.append("entries: %d" % len(r.entries))
    return lines


# ------------------------------------------------------------ incremental --


def resolve_db_files(path, m):
    """Check the DbFiles entries against the spec's naming rules and return
    [(file dict, resolved path)]."""
    start, end = m["key_group_range"]
    kgdir = "kg-%d-%d" % (start, end)
    mdir = os.path.dirname(os.path.abspath(path))
    # Shared(name) is <checkpoint dir>/shared/<name>; the checkpoint directory
    # is the parent of the manifest's chk-<id> directory.
    if os.path.basename(mdir) != "chk-%d" % m["checkpoint_id"]:
        raise manifest_error(path, m["body_at"], m["body_at"], "checkpoint_id",
                             "incremental manifest of checkpoint %d is not in a chk-%d directory"
                             % (m["checkpoint_id"], m["checkpoint_id"]))
    shared_root = os.path.join(os.path.dirname(mdir), "shared")
    out = []
    names = set()
    for i, f in enumerate(m["keyed"]["files"]):
        what = "keyed.Files.files[%d]" % i
        name, loc_name = f["name"], f["loc_name"]
        if bad_segments(name):
            raise manifest_error(path, m["body_at"], f["at"], what + ".name", "invalid name %r" % name)
        if name in names:
            raise manifest_error(path, m["body_at"], f["at"], what + ".name", "duplicate file %r" % name)
        names.add(name)
        if bad_segments(loc_name):
            raise manifest_error(path, m["body_at"], f["loc_at"], what + ".location", "invalid name %r" % loc_name)
        is_sst = name.endswith(".sst")
        if f["loc"] == 0:  # Shared: kg-<start>-<end>/<rocksdb name>.<unique>
            prefix = "%s/%s." % (kgdir, name)
            unique = loc_name[len(prefix):]
            if not loc_name.startswith(prefix) or not unique or "/" in unique:
                raise manifest_error(path, m["body_at"], f["loc_at"], what + ".location",
                                     "shared name %r is not %s<unique>" % (loc_name, prefix))
            if not is_sst:
                raise manifest_error(path, m["body_at"], f["loc_at"], what + ".location",
                                     "%r is not an SST file but is shared" % name)
            resolved = os.path.join(shared_root, *loc_name.split("/"))
        else:  # Private: beside the manifest, kg-<start>-<end>.db.<name>
            want = "%s.db.%s" % (kgdir, name)
            if loc_name != want:
                raise manifest_error(path, m["body_at"], f["loc_at"], what + ".location",
                                     "private name %r is not %r" % (loc_name, want))
            if is_sst:
                raise manifest_error(path, m["body_at"], f["loc_at"], what + ".location",
                                     "SST file %r is private" % name)
            resolved = os.path.join(os.path.dirname(path), loc_name)
        nchunks = (f["size"] + CHUNK - 1) // CHUNK
        if len(f["chunk_crcs"]) != nchunks:
            raise manifest_error(path, m["body_at"], f["crc_at"], what + ".chunk_crcs",
                                 "%d chunk CRCs for %d bytes (%d chunks of 1 MiB)"
                                 % (len(f["chunk_crcs"]), f["size"], nchunks))
        out.append((f, resolved))
    return out


def check_db_file(f, resolved):
    size = f["size"]
    try:
        fh = open(resolved, "rb")
    except OSError as e:
        raise Corrupted(resolved, 0, "file %s unreadable: %s" % (f["name"], e.strerror))
    with fh:
        actual = os.fstat(fh.fileno()).st_size
        if actual != size:
            raise Corrupted(resolved, min(actual, size),
                            "file %s is %d bytes, manifest says %d (truncated or replaced)"
                            % (f["name"], actual, size))
        for i, want in enumerate(f["chunk_crcs"]):
            chunk = fh.read(CHUNK)
            expect_len = min(CHUNK, size - i * CHUNK)
            if len(chunk) != expect_len:
                raise Corrupted(resolved, i * CHUNK + len(chunk), "file %s changed while reading"
                                % f["name"])
            got = crc32c(chunk)
            if got != want:
                raise Corrupted(resolved, i * CHUNK,
                                "file %s chunk %d CRC32C mismatch: manifest %08x, computed %08x"
                                % (f["name"], i, want, got))
        if fh.read(1):
            raise Corrupted(resolved, size, "file %s grew while reading" % f["name"])


def read_files(path, raw, m, mlen):
    """An incremental (DbFiles) manifest: check every file; returns the output
    lines.  The SST contents are RocksDB's business and are not decoded."""
    if len(raw) != mlen:
        raise Corrupted(path, mlen, "%d bytes after the manifest in a manifest file"
                        % (len(raw) - mlen))
    if m["backend"] != 2:
        raise manifest_error(path, m["body_at"], m["keyed_at"], "keyed",
                             "incremental files written by the %s backend" % BACKENDS[m["backend"]])
    lines = []
    total = 0
    for f, resolved in resolve_db_files(path, m):
        check_db_file(f, resolved)
        lines.append("file %s %s %d" % (f["name"], "shared" if f["loc"] == 0 else "private",
                                        f["size"]))
        total += f["size"]
    lines.sort()
    lines.append("files: %d" % len(lines))
    lines.append("bytes: %d" % total)
    return lines


def read_single(path, raw):
    """A single-stream snapshot: data stream ‖ manifest ‖ manifest_offset:u64le ‖ "STBKTAIL"."""
    n = len(raw)
    if n < TRAILER or raw[n - 8:] != TAIL_MAGIC:
        raise Corrupted(path, max(n - 8, 0), "bad trailer magic %r" % bytes(raw[max(n - 8, 0):]))
    tail = n - TRAILER
    moff = struct.unpack_from("<Q", raw, tail)[0]
    if moff > tail:
        raise Corrupted(path, tail, "manifest_offset %d beyond the trailer at %d" % (moff, tail))
    m, mlen = read_manifest(path, raw, moff, tail)
    if moff + mlen != tail:
        raise Corrupted(path, moff + mlen, "%d bytes between the manifest and the trailer"
                        % (tail - moff - mlen))
    if m["keyed"]["kind"] != "Full":
        raise manifest_error(path, m["body_at"], m["keyed_at"], "keyed",
                             "incremental files in a single-stream snapshot")
    return read_full(path, raw[:moff], m, mlen, single_stream=True)


def main(argv):
    if len(argv) != 2:
        print("usage: read_snapshot.py <manifest-file | inline snapshot | single-stream snapshot>",
              file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        print("error: cannot read %s: %s" % (path, e.strerror), file=sys.stderr)
        return 2
    try:
        if raw[:8] != MANI_MAGIC and (raw[:8] == DATA_MAGIC or raw[-8:] == TAIL_MAGIC):
            lines = read_single(path, raw)
        else:
            m, mlen = read_manifest(path, raw)
            if m["keyed"]["kind"] == "Full":
                lines = read_full(path, raw, m, mlen)
            else:
                lines = read_files(path, raw, m, mlen)
    except Corrupted as c:
        print("corrupted: %s at offset %d: %s" % (c.file, c.offset, c.reason), file=sys.stderr)
        return 1
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
