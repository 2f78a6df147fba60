//! The heap store's hash table: open addressing over fixed-width byte slots,
//! copy-on-write at the granularity of segments.
//!
//! A [`Table`] maps (key, namespace) to a value. It is a power-of-two number of
//! segments chosen by the top bits of the hash; a segment is one allocation of a
//! header, SwissTable-style control bytes (a 7-bit tag per slot, probed 16 at a
//! time) and `capacity × width` bytes of slots. A record lives inline in its slot —
//! `len(key) ‖ len(namespace) ‖ len(value) ‖ key ‖ namespace ‖ value` — when it is
//! short; a longer one moves to a shared heap record and the slot keeps a pointer.
//! The width is per segment: the longest inline record seen, so 8-byte keys and
//! values take 20 bytes plus a control byte, with no padding, no per-entry
//! allocation and no pointer to follow. Capacities are not powers of two (the home
//! slot is `hash × capacity >> 32`), so a segment grows by 30%, not by double, and
//! stays 72–94% full: 28 bytes per such entry resident at 10 million entries, 33
//! when segments grew by 2/3 and stayed 60–87.5% full.
//!
//! Segments are reference counted. Cloning a table copies its segment pointers —
//! what the synchronous snapshot phase does — and a later write copies only the
//! segment it touches, so the snapshot keeps its view while the live table moves on.
//! Heap records and nested tables are shared by reference between the copies.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::hash::{BuildHasher, Hasher};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::LazyLock;

use super::record::{HeapRecord, RecordRef};

/// Entries per segment, on average, before every segment splits in two. Bounds the
/// pause of the first write into a segment a snapshot shares (one segment copy).
const SEGMENT_TARGET: usize = 2048;
/// Longest record kept inline; longer ones go to a heap record.
const MAX_INLINE: usize = 48;
/// Smallest segment capacity (a table of one entry).
const MIN_CAPACITY: usize = 4;
/// Control bytes probed at once.
const GROUP: usize = 16;
/// Control byte of a never-used slot.
const EMPTY: u8 = 0xFF;
/// Control byte of a removed entry's slot (a tombstone: probes continue past it).
const DELETED: u8 = 0x80;
/// First byte of a slot whose record is on the heap.
const HEAP: u8 = 0xFF;
/// Bytes of a heap slot: the marker and the record's pointer.
const HEAP_SLOT: usize = 1 + size_of::<usize>();

static HASHER: LazyLock<foldhash::fast::RandomState> = LazyLock::new(Default::default);

/// The hash of a (key, namespace); randomly seeded per process.
#[inline]
fn hash(key: &[u8], ns: &[u8]) -> u64 {
    let mut h = HASHER.build_hasher();
    h.write(key);
    h.write(ns);
    h.finish()
}

/// The 7-bit tag kept in the control byte (bits independent of the home slot's and
/// the segment's).
#[inline]
fn tag(h: u64) -> u8 {
    ((h >> 32) & 0x7f) as u8
}

/// The home slot: the low 32 hash bits scaled to the capacity.
#[inline]
fn home(h: u64, cap: usize) -> usize {
    (((h as u32) as u64 * cap as u64) >> 32) as usize
}

/// Entries plus tombstones a segment of `cap` slots may hold: 15/16, and at least
/// one slot stays empty, so every probe ends. Probing reads 16 control bytes at a
/// time, so a high load costs little.
#[inline]
fn max_fill(cap: usize) -> usize {
    (cap - cap / 16).min(cap - 1)
}

/// The capacity for `n` entries after a rebuild: 72% full, so a segment grows by
/// 30% at a time and stays 72–94% full.
fn capacity_for(n: usize) -> usize {
    (n * 100 / 72 + 1).max(MIN_CAPACITY)
}

mod group {
    //! 16 control bytes at a time: SSE2 on x86-64, a portable loop elsewhere.

    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy)]
    pub struct Group(__m128i);

    #[cfg(target_arch = "x86_64")]
    impl Group {
        /// # Safety
        /// `p..p + 16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment needs.
            Group(unsafe { _mm_loadu_si128(p.cast()) })
        }

        /// Bit i set where byte i equals `byte`.
        #[inline(always)]
        pub fn matching(self, byte: u8) -> u16 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe { _mm_movemask_epi8(_mm_cmpeq_epi8(self.0, _mm_set1_epi8(byte as i8))) as u16 }
        }

        /// Bit i set where byte i has its high bit set (empty or deleted).
        #[inline(always)]
        pub fn free(self) -> u16 {
            // SAFETY: SSE2 is part of the x86-64 baseline.
            unsafe { _mm_movemask_epi8(self.0) as u16 }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    #[derive(Clone, Copy)]
    pub struct Group([u8; 16]);

    #[cfg(not(target_arch = "x86_64"))]
    impl Group {
        /// # Safety
        /// `p..p + 16` must be readable.
        #[inline(always)]
        pub unsafe fn load(p: *const u8) -> Self {
            // SAFETY: the caller guarantees 16 readable bytes.
            Group(unsafe { std::ptr::read_unaligned(p.cast()) })
        }

        #[inline(always)]
        pub fn matching(self, byte: u8) -> u16 {
            let mut m = 0u16;
            for (i, b) in self.0.iter().enumerate() {
                m |= ((*b == byte) as u16) << i;
            }
            m
        }

        #[inline(always)]
        pub fn free(self) -> u16 {
            let mut m = 0u16;
            for (i, b) in self.0.iter().enumerate() {
                m |= ((*b >> 7) as u16) << i;
            }
            m
        }
    }
}
use group::Group;

/// The heap record a heap slot points to.
///
/// # Safety
/// `slot` must be a live heap slot.
#[inline]
unsafe fn heap_ptr(slot: *const u8) -> *const u8 {
    // SAFETY: a heap slot stores the pointer (unaligned) right after the marker.
    unsafe { ptr::read_unaligned(slot.add(1).cast::<*const u8>()) }
}

/// # Safety
/// `slot` must be a live heap slot; the record outlives `'a`.
#[inline]
unsafe fn heap_record<'a>(slot: *const u8) -> RecordRef<'a> {
    // SAFETY: the slot holds a reference to the record.
    unsafe { RecordRef::from_raw(heap_ptr(slot)) }
}

/// Stores a new heap record into `slot`, which has `room` bytes before its tail
/// (taking the record's reference).
///
/// # Safety
/// `slot` must have `room` writable bytes, not a live record's.
#[inline]
unsafe fn put_heap(slot: *mut u8, room: usize, record: HeapRecord) {
    // Slot widths guarantee the room (see Kind::width); a violation would write into
    // the next slot or past the segment.
    assert!(room >= HEAP_SLOT, "a heap slot in a {room}-byte slot");
    // SAFETY: the caller provides `room` >= HEAP_SLOT bytes; the pointer is stored
    // unaligned.
    unsafe {
        *slot = HEAP;
        ptr::write_unaligned(slot.add(1).cast(), record.into_raw());
    }
}

/// Edits the heap record of `slot` (the record copies itself first if another
/// segment copy shares it).
///
/// # Safety
/// `slot` must be a live heap slot of a segment this table owns uniquely.
unsafe fn edit_heap(slot: *mut u8, f: impl FnOnce(&mut HeapRecord)) {
    // SAFETY: the slot owns one reference, taken here and stored back below.
    let mut record = unsafe { HeapRecord::from_raw(heap_ptr(slot)) };
    f(&mut record);
    // SAFETY: same slot; it gets its (possibly moved) reference back.
    unsafe { ptr::write_unaligned(slot.add(1).cast(), record.into_raw()) };
}

/// Key and namespace of a live slot.
///
/// # Safety
/// `slot` must be a live slot; its bytes outlive `'a`.
#[inline]
unsafe fn slot_key<'a>(slot: *const u8) -> (&'a [u8], &'a [u8]) {
    // SAFETY: a live slot is either a heap slot or an inline record whose lengths
    // describe the bytes that follow them.
    unsafe {
        let kl = *slot;
        if kl == HEAP {
            let r = heap_record(slot);
            (r.key(), r.ns())
        } else {
            let nl = *slot.add(1) as usize;
            let k = std::slice::from_raw_parts(slot.add(3), kl as usize);
            let n = std::slice::from_raw_parts(slot.add(3 + kl as usize), nl);
            (k, n)
        }
    }
}

/// Whether a live slot holds (key, ns).
///
/// # Safety
/// `slot` must be a live slot.
#[inline(always)]
unsafe fn slot_matches(slot: *const u8, key: &[u8], ns: &[u8]) -> bool {
    // SAFETY: as slot_key; the lengths are compared before the bytes.
    unsafe {
        let kl = *slot;
        if kl == HEAP {
            let r = heap_record(slot);
            return r.key() == key && r.ns() == ns;
        }
        kl as usize == key.len()
            && *slot.add(1) as usize == ns.len()
            && bytes_eq(slot.add(3), key)
            && bytes_eq(slot.add(3 + key.len()), ns)
    }
}

/// `p[..b.len()] == b`, with a fast path for the short keys state usually has.
///
/// # Safety
/// `p..p + b.len()` must be readable.
#[inline(always)]
unsafe fn bytes_eq(p: *const u8, b: &[u8]) -> bool {
    let n = b.len();
    let q = b.as_ptr();
    // SAFETY: every read stays within the first n bytes of both.
    unsafe {
        if n >= 8 {
            if n <= 16 {
                let a0 = ptr::read_unaligned(p.cast::<u64>());
                let b0 = ptr::read_unaligned(q.cast::<u64>());
                let a1 = ptr::read_unaligned(p.add(n - 8).cast::<u64>());
                let b1 = ptr::read_unaligned(q.add(n - 8).cast::<u64>());
                return (a0 ^ b0) | (a1 ^ b1) == 0;
            }
            return std::slice::from_raw_parts(p, n) == b;
        }
        if n >= 4 {
            let a0 = ptr::read_unaligned(p.cast::<u32>());
            let b0 = ptr::read_unaligned(q.cast::<u32>());
            let a1 = ptr::read_unaligned(p.add(n - 4).cast::<u32>());
            let b1 = ptr::read_unaligned(q.add(n - 4).cast::<u32>());
            return (a0 ^ b0) | (a1 ^ b1) == 0;
        }
        for i in 0..n {
            if *p.add(i) != *q.add(i) {
                return false;
            }
        }
        true
    }
}

/// Bytes at the start of a live slot that belong to its record (the key part and,
/// for byte values, the value).
///
/// # Safety
/// `slot` must be a live slot.
#[inline]
unsafe fn head_len(slot: *const u8) -> usize {
    // SAFETY: a live slot's first three bytes are its lengths, or it is a heap slot.
    unsafe {
        if *slot == HEAP {
            HEAP_SLOT
        } else {
            3 + *slot as usize + *slot.add(1) as usize + *slot.add(2) as usize
        }
    }
}

/// What a table maps to: byte strings ([`Bytes`]) or nested tables ([`Maps`]).
///
/// # Safety
/// Implementations keep whatever they own in the last `TAIL` bytes of a slot, at an
/// 8-aligned offset, and release it in `drop_tail` only.
pub unsafe trait Kind: 'static {
    /// Bytes at the end of each slot holding the value object (0: none).
    const TAIL: usize;
    /// The slot width for a record whose key part takes `head` bytes: at least
    /// `head + TAIL`, and at least `HEAP_SLOT + TAIL` where a live record can move to
    /// the heap in place (byte values that grow).
    fn width(head: usize) -> usize;
    /// Writes a new slot's tail (an empty value object).
    ///
    /// # Safety
    /// `slot` must be a slot of a segment `width` wide whose tail owns nothing.
    unsafe fn init_tail(slot: *mut u8, width: usize);
    /// After a byte copy of a live slot: takes the copy's own references.
    ///
    /// # Safety
    /// `slot` must be a live slot of a segment `width` wide.
    unsafe fn clone_tail(slot: *mut u8, width: usize);
    /// Releases what a live slot's tail owns.
    ///
    /// # Safety
    /// `slot` must be a live slot of a segment `width` wide; it is dead afterwards.
    unsafe fn drop_tail(slot: *mut u8, width: usize);
}

/// Byte-string values, stored after the key in the slot (or in the heap record).
pub struct Bytes;

// SAFETY: no tail.
unsafe impl Kind for Bytes {
    const TAIL: usize = 0;

    /// Never below a heap slot: a record moves to the heap in its own slot when its
    /// value outgrows the width (a list's appends, a longer value), and that must not
    /// write into the next slot.
    #[inline]
    fn width(head: usize) -> usize {
        head.max(HEAP_SLOT)
    }

    #[inline]
    unsafe fn init_tail(_: *mut u8, _: usize) {}

    #[inline]
    unsafe fn clone_tail(_: *mut u8, _: usize) {}

    #[inline]
    unsafe fn drop_tail(_: *mut u8, _: usize) {}
}

/// Nested tables (map state: (key, namespace) → user key → value), each stored in
/// the last 16 bytes of its slot.
pub struct Maps;

// SAFETY: the tail is a ByteTable at `width - 16`, 8-aligned since widths are
// multiples of 8 and slots start 8-aligned.
unsafe impl Kind for Maps {
    const TAIL: usize = size_of::<ByteTable>();

    #[inline]
    fn width(head: usize) -> usize {
        head.next_multiple_of(8) + Self::TAIL
    }

    #[inline]
    unsafe fn init_tail(slot: *mut u8, width: usize) {
        // SAFETY: the tail is 8-aligned room for a table and owns nothing.
        unsafe { ptr::write(slot.add(width - Self::TAIL).cast(), ByteTable::new()) }
    }

    #[inline]
    unsafe fn clone_tail(slot: *mut u8, width: usize) {
        // SAFETY: the tail holds a table whose bits were copied; write a real clone
        // over them (the bitwise copy is forgotten, the original keeps its references).
        unsafe {
            let tail = slot.add(width - Self::TAIL).cast::<ByteTable>();
            let clone = (*tail).clone();
            ptr::write(tail, clone);
        }
    }

    #[inline]
    unsafe fn drop_tail(slot: *mut u8, width: usize) {
        // SAFETY: the tail holds a live table, dropped once.
        unsafe { ptr::drop_in_place(slot.add(width - Self::TAIL).cast::<ByteTable>()) }
    }
}

#[repr(C)]
struct Header {
    refs: AtomicU32,
    /// Live entries.
    len: u32,
    /// Tombstones.
    deleted: u32,
    cap: u32,
    width: u32,
    /// Heap slots (copies and drops skip the slot walk when there are none).
    heap: u32,
}

const HEADER: usize = size_of::<Header>();

/// Offset of the slots and the allocation's layout.
#[inline]
fn layout(cap: usize, width: usize) -> (usize, Layout) {
    let slots = (HEADER + cap + GROUP).next_multiple_of(8);
    let size = slots + cap * width;
    (
        slots,
        Layout::from_size_align(size, 8).expect("segment size overflow"),
    )
}

/// One segment: a reference-counted allocation of header, control bytes (with the
/// first 16 mirrored after the last, so any 16 starting below `cap` can be loaded)
/// and slots.
#[repr(transparent)]
struct Segment<K: Kind> {
    ptr: NonNull<Header>,
    _kind: PhantomData<K>,
}

// SAFETY: a shared segment is never written (writers copy it first); the reference
// count is atomic, and what slots own (heap records, nested tables) is Send + Sync.
unsafe impl<K: Kind> Send for Segment<K> {}
// SAFETY: as above.
unsafe impl<K: Kind> Sync for Segment<K> {}

/// Where a record goes.
enum Placement {
    Inline(usize),
    Heap,
}

impl<K: Kind> Segment<K> {
    fn new(cap: usize, width: usize) -> Self {
        assert!(cap <= u32::MAX as usize && width <= u32::MAX as usize);
        let (_, layout) = layout(cap, width);
        // SAFETY: the layout has a non-zero size (the header).
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p.cast::<Header>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: fresh allocation of the layout: header, then cap + 16 control bytes.
        unsafe {
            ptr.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                len: 0,
                deleted: 0,
                cap: cap as u32,
                width: width as u32,
                heap: 0,
            });
            ptr::write_bytes(p.add(HEADER), EMPTY, cap + GROUP);
        }
        Segment {
            ptr,
            _kind: PhantomData,
        }
    }

    /// The pointer, owning this reference.
    fn into_raw(self) -> *mut u8 {
        std::mem::ManuallyDrop::new(self).ptr.as_ptr().cast()
    }

    #[inline(always)]
    fn header(&self) -> &Header {
        // SAFETY: the allocation starts with an initialised header while self lives.
        unsafe { self.ptr.as_ref() }
    }

    #[inline(always)]
    fn header_mut(&mut self) -> &mut Header {
        // SAFETY: as header; &mut self on a unique segment (callers make it unique).
        unsafe { self.ptr.as_mut() }
    }

    #[inline(always)]
    fn cap(&self) -> usize {
        self.header().cap as usize
    }

    #[inline(always)]
    fn width(&self) -> usize {
        self.header().width as usize
    }

    #[inline(always)]
    fn ctrl(&self) -> *mut u8 {
        // SAFETY: the control bytes follow the header in the same allocation.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(HEADER) }
    }

    #[inline(always)]
    fn slot(&self, i: usize) -> *mut u8 {
        let (slots, _) = layout(self.cap(), self.width());
        // SAFETY: i < cap, so the slot lies within the allocation.
        unsafe { self.ptr.as_ptr().cast::<u8>().add(slots + i * self.width()) }
    }

    #[inline(always)]
    fn is_full(&self, i: usize) -> bool {
        // SAFETY: i < cap.
        unsafe { *self.ctrl().add(i) < 0x80 }
    }

    /// Sets control byte `i` and its mirrors.
    #[inline]
    fn set_ctrl(&mut self, i: usize, byte: u8) {
        let cap = self.cap();
        let ctrl = self.ctrl();
        // SAFETY: i < cap; the mirrors lie in cap..cap + 16.
        unsafe {
            *ctrl.add(i) = byte;
            let mut m = i;
            while m < GROUP {
                *ctrl.add(cap + m) = byte;
                m += cap;
            }
        }
    }

    /// The slot index of a match, probing from the home slot.
    #[inline(always)]
    fn find(&self, h: u64, key: &[u8], ns: &[u8]) -> Option<usize> {
        let cap = self.cap();
        let ctrl = self.ctrl();
        let t = tag(h);
        let mut pos = home(h, cap);
        // The entry is usually at or just after its home slot: start loading that
        // line now rather than after the control bytes arrive.
        prefetch(self.slot(pos));
        loop {
            // SAFETY: pos < cap and the control bytes extend 16 past cap.
            let g = unsafe { Group::load(ctrl.add(pos)) };
            let mut m = g.matching(t);
            while m != 0 {
                let i = wrap(pos + m.trailing_zeros() as usize, cap);
                // SAFETY: a matching tag marks a live slot.
                if unsafe { slot_matches(self.slot(i), key, ns) } {
                    return Some(i);
                }
                m &= m - 1;
            }
            if g.matching(EMPTY) != 0 {
                return None;
            }
            pos = wrap(pos + GROUP, cap);
        }
    }

    /// The first empty or deleted slot on `h`'s probe sequence.
    #[inline]
    fn find_free(&self, h: u64) -> usize {
        let cap = self.cap();
        let ctrl = self.ctrl();
        let mut pos = home(h, cap);
        loop {
            // SAFETY: as in find.
            let m = unsafe { Group::load(ctrl.add(pos)) }.free();
            if m != 0 {
                return wrap(pos + m.trailing_zeros() as usize, cap);
            }
            pos = wrap(pos + GROUP, cap);
        }
    }

    /// Makes this segment unique: copies it if a snapshot shares it.
    #[inline]
    fn make_mut(&mut self) {
        if self.header().refs.load(Ordering::Acquire) != 1 {
            *self = self.copy();
        }
    }

    /// A private copy, taking references to whatever the slots share.
    fn copy(&self) -> Self {
        let (cap, width) = (self.cap(), self.width());
        let (_, layout) = layout(cap, width);
        let hd = self.header();
        // SAFETY: same layout as self. The header is written anew rather than
        // copied: another thread holding this segment may be changing its reference
        // count. Control bytes and slots are copied (nobody writes a shared segment),
        // then the copy takes its own references to heap records and tails.
        unsafe {
            let p = alloc(layout);
            let Some(ptr) = NonNull::new(p.cast::<Header>()) else {
                handle_alloc_error(layout)
            };
            ptr.as_ptr().write(Header {
                refs: AtomicU32::new(1),
                len: hd.len,
                deleted: hd.deleted,
                cap: hd.cap,
                width: hd.width,
                heap: hd.heap,
            });
            ptr::copy_nonoverlapping(
                self.ptr.as_ptr().cast::<u8>().add(HEADER),
                p.add(HEADER),
                layout.size() - HEADER,
            );
            let copy = Segment {
                ptr,
                _kind: PhantomData,
            };
            if K::TAIL > 0 || copy.header().heap > 0 {
                for i in 0..cap {
                    if copy.is_full(i) {
                        let slot = copy.slot(i);
                        if *slot == HEAP {
                            HeapRecord::increment(heap_ptr(slot));
                        }
                        K::clone_tail(slot, width);
                    }
                }
            }
            copy
        }
    }

    /// Writes a new record into a free slot (the segment has room and width).
    ///
    /// # Safety
    /// The segment is unique, not full, and `place` fits its width.
    #[inline]
    unsafe fn write_new(
        &mut self,
        h: u64,
        key: &[u8],
        ns: &[u8],
        value: &[u8],
        place: Placement,
    ) -> usize {
        let i = self.find_free(h);
        let slot = self.slot(i);
        // SAFETY: the slot is free and `width` bytes long, at least the record's
        // head (the caller sized the segment for it).
        unsafe {
            match place {
                Placement::Inline(_) => write_inline(slot, key, ns, value),
                Placement::Heap => {
                    put_heap(
                        slot,
                        self.width() - K::TAIL,
                        HeapRecord::new(key, ns, value, 0),
                    );
                    self.header_mut().heap += 1;
                }
            }
            // Live from here on: its tail too (a free slot's tail owns nothing).
            K::init_tail(slot, self.width());
            let was_deleted = *self.ctrl().add(i) == DELETED;
            self.set_ctrl(i, tag(h));
            let hd = self.header_mut();
            hd.len += 1;
            if was_deleted {
                hd.deleted -= 1;
            }
        }
        i
    }

    /// Removes the live entry in slot `i`.
    ///
    /// # Safety
    /// The segment is unique and slot `i` live.
    unsafe fn erase(&mut self, i: usize) {
        let (cap, width) = (self.cap(), self.width());
        let slot = self.slot(i);
        // SAFETY: a live slot, released once; its control byte is cleared below.
        unsafe {
            if *slot == HEAP {
                drop(HeapRecord::from_raw(heap_ptr(slot)));
                self.header_mut().heap -= 1;
            }
            K::drop_tail(slot, width);
        }
        // A slot may become EMPTY again only if no probe can have passed it on a
        // full window of 16: i.e. some empty slot lies within 16 on each side.
        let byte = if cap >= 2 * GROUP {
            let ctrl = self.ctrl();
            let before = wrap(i + cap - GROUP, cap);
            // SAFETY: both positions are below cap.
            let (b, a) = unsafe {
                (
                    Group::load(ctrl.add(before)).matching(EMPTY),
                    Group::load(ctrl.add(i)).matching(EMPTY),
                )
            };
            if b.leading_zeros() + a.trailing_zeros() >= GROUP as u32 {
                DELETED
            } else {
                EMPTY
            }
        } else {
            DELETED
        };
        self.set_ctrl(i, byte);
        let hd = self.header_mut();
        hd.len -= 1;
        if byte == DELETED {
            hd.deleted += 1;
        }
    }

    /// Moves (or, from a shared segment, copies) every entry into `targets`, the
    /// target of an entry chosen by `pick(hash)`. Targets are unique, have room for
    /// their entries (checked: a full target would never end a probe) and are at
    /// least as wide as this segment.
    fn drain_into(self, targets: &mut [Segment<K>], pick: impl Fn(u64) -> usize) {
        let unique = self.header().refs.load(Ordering::Acquire) == 1;
        let (cap, width) = (self.cap(), self.width());
        for i in 0..cap {
            if !self.is_full(i) {
                continue;
            }
            let src = self.slot(i);
            // SAFETY: a live slot; the target is wide enough (targets are at least as
            // wide as this segment, or sized for its longest record by the caller).
            unsafe {
                let (key, ns) = slot_key(src);
                let h = hash(key, ns);
                let t = &mut targets[pick(h)];
                let twidth = t.width();
                let hd = t.header();
                assert!(
                    ((hd.len + hd.deleted) as usize) < max_fill(t.cap()) && twidth >= width,
                    "segment rebuilt into a full or narrower one"
                );
                let j = t.find_free(h);
                let dst = t.slot(j);
                ptr::copy_nonoverlapping(src, dst, head_len(src));
                if K::TAIL > 0 {
                    ptr::copy_nonoverlapping(
                        src.add(width - K::TAIL),
                        dst.add(twidth - K::TAIL),
                        K::TAIL,
                    );
                }
                if *src == HEAP {
                    t.header_mut().heap += 1;
                    if !unique {
                        HeapRecord::increment(heap_ptr(dst));
                    }
                }
                if !unique {
                    K::clone_tail(dst, twidth);
                }
                t.set_ctrl(j, tag(h));
                t.header_mut().len += 1;
            }
        }
        if unique {
            // Everything moved: free the allocation without releasing the contents.
            let (_, layout) = layout(cap, width);
            // SAFETY: the only reference; allocated with this layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) };
            std::mem::forget(self);
        }
    }

    /// Visits the live slots.
    #[inline]
    fn for_each_live(&self, mut f: impl FnMut(*mut u8)) {
        for i in 0..self.cap() {
            if self.is_full(i) {
                f(self.slot(i));
            }
        }
    }

    /// Rebuilt with capacity `cap` and width `width` (at least the current one).
    fn rebuilt(self, cap: usize, width: usize) -> Self {
        let mut target = [Segment::new(cap, width)];
        self.drain_into(&mut target, |_| 0);
        let [t] = target;
        t
    }
}

impl<K: Kind> Clone for Segment<K> {
    fn clone(&self) -> Self {
        self.header().refs.fetch_add(1, Ordering::Relaxed);
        Segment {
            ptr: self.ptr,
            _kind: PhantomData,
        }
    }
}

impl<K: Kind> Drop for Segment<K> {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let (cap, width) = (self.cap(), self.width());
        // SAFETY: the last reference: release every live slot once, then free.
        unsafe {
            if K::TAIL > 0 || self.header().heap > 0 {
                for i in 0..cap {
                    if self.is_full(i) {
                        let slot = self.slot(i);
                        if *slot == HEAP {
                            drop(HeapRecord::from_raw(heap_ptr(slot)));
                        }
                        K::drop_tail(slot, width);
                    }
                }
            }
            dealloc(self.ptr.as_ptr().cast(), layout(cap, width).1);
        }
    }
}

/// Hints the CPU to load the cache line of `p`.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `i` reduced into `0..cap`, for `i < cap + 16`.
#[inline(always)]
fn wrap(mut i: usize, cap: usize) -> usize {
    while i >= cap {
        i -= cap;
    }
    i
}

/// Writes an inline record.
///
/// # Safety
/// `slot` has `3 + key + ns + value` writable bytes; each length is below 255.
#[inline]
unsafe fn write_inline(slot: *mut u8, key: &[u8], ns: &[u8], value: &[u8]) {
    // SAFETY: as the caller guarantees.
    unsafe {
        *slot = key.len() as u8;
        *slot.add(1) = ns.len() as u8;
        *slot.add(2) = value.len() as u8;
        let mut p = slot.add(3);
        for part in [key, ns, value] {
            ptr::copy_nonoverlapping(part.as_ptr(), p, part.len());
            p = p.add(part.len());
        }
    }
}

/// Where a new record of these lengths goes.
#[inline]
fn placement<K: Kind>(key: usize, ns: usize, value: usize) -> Placement {
    let head = 3 + key + ns + value;
    if key < HEAP as usize
        && ns <= u8::MAX as usize
        && value <= u8::MAX as usize
        && head <= MAX_INLINE
    {
        Placement::Inline(K::width(head))
    } else {
        Placement::Heap
    }
}

/// A hash map from (key, namespace) to `K`'s values with O(segments) clones.
pub struct Table<K: Kind> {
    /// With no directory bits: the only segment (null when empty); otherwise
    /// 2^bits segments.
    dir: *mut u8,
    /// Entries (low 56 bits) and directory bits (high 8).
    meta: u64,
    _kind: PhantomData<K>,
}

/// A table of byte strings (value and list state, and the maps of map state).
pub type ByteTable = Table<Bytes>;
/// A table of maps (map state).
pub type MapTable = Table<Maps>;

// SAFETY: a table owns its segments; see Segment.
unsafe impl<K: Kind> Send for Table<K> {}
// SAFETY: as above.
unsafe impl<K: Kind> Sync for Table<K> {}

const LEN_MASK: u64 = (1 << 56) - 1;

impl<K: Kind> Default for Table<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Kind> Table<K> {
    pub const fn new() -> Self {
        Table {
            dir: ptr::null_mut(),
            meta: 0,
            _kind: PhantomData,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn bits(&self) -> u32 {
        (self.meta >> 56) as u32
    }

    #[inline]
    fn add_len(&mut self, delta: isize) {
        self.meta = (self.meta & !LEN_MASK) | (self.len() as isize + delta) as u64;
    }

    #[inline(always)]
    fn segments(&self) -> &[Segment<K>] {
        let bits = self.bits();
        // SAFETY: with no bits, `dir` itself is the one segment pointer (a
        // transparent NonNull) when non-null; otherwise it points to 2^bits segments.
        unsafe {
            if bits == 0 {
                if self.dir.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts((&raw const self.dir).cast::<Segment<K>>(), 1)
                }
            } else {
                std::slice::from_raw_parts(self.dir.cast::<Segment<K>>(), 1 << bits)
            }
        }
    }

    #[inline(always)]
    fn segments_mut(&mut self) -> &mut [Segment<K>] {
        let bits = self.bits();
        // SAFETY: as segments.
        unsafe {
            if bits == 0 {
                if self.dir.is_null() {
                    &mut []
                } else {
                    std::slice::from_raw_parts_mut((&raw mut self.dir).cast::<Segment<K>>(), 1)
                }
            } else {
                std::slice::from_raw_parts_mut(self.dir.cast::<Segment<K>>(), 1 << bits)
            }
        }
    }

    #[inline(always)]
    fn segment_index(&self, h: u64) -> usize {
        let bits = self.bits();
        if bits == 0 {
            0
        } else {
            (h >> (64 - bits)) as usize
        }
    }

    /// The segment and slot of (key, ns).
    #[inline(always)]
    fn lookup(&self, key: &[u8], ns: &[u8]) -> Option<(&Segment<K>, usize)> {
        let h = hash(key, ns);
        let seg = self.segments().get(self.segment_index(h))?;
        seg.find(h, key, ns).map(|i| (seg, i))
    }

    pub fn contains(&self, key: &[u8], ns: &[u8]) -> bool {
        self.lookup(key, ns).is_some()
    }

    /// The slot of (key, ns) in a segment made unique, inserting a record (`value`
    /// for byte tables, an empty map's head for map tables) when absent.
    /// Returns (segment index, slot, inserted).
    fn upsert(&mut self, h: u64, key: &[u8], ns: &[u8], value: &[u8]) -> (usize, usize, bool) {
        if self.dir.is_null() {
            let width = match placement::<K>(key.len(), ns.len(), value.len()) {
                Placement::Inline(w) => w,
                Placement::Heap => K::width(HEAP_SLOT),
            };
            self.dir = Segment::<K>::new(MIN_CAPACITY, width).into_raw();
        }
        let s = self.segment_index(h);
        let seg = &mut self.segments_mut()[s];
        seg.make_mut();
        if let Some(i) = seg.find(h, key, ns) {
            return (s, i, false);
        }
        let place = placement::<K>(key.len(), ns.len(), value.len());
        let need = match place {
            Placement::Inline(w) => w,
            Placement::Heap => K::width(HEAP_SLOT),
        };
        let hd = seg.header();
        let (len, fill, cap, width) = (
            hd.len as usize,
            (hd.len + hd.deleted) as usize,
            hd.cap as usize,
            hd.width as usize,
        );
        if fill + 1 > max_fill(cap) || need > width {
            let new_cap = if fill + 1 > max_fill(cap) {
                capacity_for(len + 1)
            } else {
                cap
            };
            let old = std::mem::replace(seg, Segment::new(MIN_CAPACITY, 1));
            *seg = old.rebuilt(new_cap, width.max(need));
        }
        // SAFETY: unique, with room and width for the record.
        let i = unsafe { seg.write_new(h, key, ns, value, place) };
        self.add_len(1);
        if self.len() > SEGMENT_TARGET << self.bits() && self.bits() < 24 {
            self.split();
            // The entry moved: find it again.
            let s = self.segment_index(h);
            let i = self.segments()[s].find(h, key, ns).expect("just inserted");
            return (s, i, true);
        }
        (s, i, true)
    }

    /// Removes (key, ns); a miss copies nothing.
    pub fn remove(&mut self, key: &[u8], ns: &[u8]) -> bool {
        let h = hash(key, ns);
        let s = self.segment_index(h);
        let Some(seg) = self.segments_mut().get_mut(s) else {
            return false;
        };
        let Some(i) = seg.find(h, key, ns) else {
            return false;
        };
        // A copy keeps the same layout, so slot i is still the entry.
        seg.make_mut();
        // SAFETY: unique segment, live slot.
        unsafe { seg.erase(i) };
        self.add_len(-1);
        true
    }

    /// Doubles the number of segments: segment i splits into 2i and 2i + 1 by the
    /// next hash bit. Segments a snapshot shares are copied, others moved.
    fn split(&mut self) {
        let bits = self.bits();
        let old: Vec<Segment<K>> = self.take_segments();
        let mut new = Vec::with_capacity(old.len() * 2);
        let half = |h: u64| ((h >> (63 - bits)) & 1) as usize;
        for seg in old {
            // Sized by counting, not by estimate: halves differ, and a small segment's
            // may differ a lot.
            let mut count = [0usize; 2];
            seg.for_each_live(|slot| {
                // SAFETY: a live slot of a segment we hold.
                let (key, ns) = unsafe { slot_key(slot) };
                count[half(hash(key, ns))] += 1;
            });
            let width = seg.width();
            let mut pair = count.map(|n| Segment::new(capacity_for(n), width));
            seg.drain_into(&mut pair, half);
            new.extend(pair);
        }
        self.dir = Box::into_raw(new.into_boxed_slice()).cast();
        self.meta = (self.meta & LEN_MASK) | ((bits as u64 + 1) << 56);
    }

    /// Takes the segments out, leaving the table without any.
    fn take_segments(&mut self) -> Vec<Segment<K>> {
        let bits = self.bits();
        let dir = std::mem::replace(&mut self.dir, ptr::null_mut());
        self.meta &= LEN_MASK;
        if dir.is_null() {
            Vec::new()
        } else if bits == 0 {
            vec![Segment {
                // SAFETY: non-null, the one segment's pointer.
                ptr: unsafe { NonNull::new_unchecked(dir.cast()) },
                _kind: PhantomData,
            }]
        } else {
            // SAFETY: allocated as a boxed slice of 2^bits segments in split.
            unsafe {
                Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    dir.cast::<Segment<K>>(),
                    1 << bits,
                ))
            }
            .into_vec()
        }
    }

    /// Visits live slots.
    fn for_each_slot(&self, mut f: impl FnMut(*const u8, usize)) {
        for seg in self.segments() {
            let (cap, width) = (seg.cap(), seg.width());
            for i in 0..cap {
                if seg.is_full(i) {
                    f(seg.slot(i), width);
                }
            }
        }
    }
}

impl<K: Kind> Clone for Table<K> {
    fn clone(&self) -> Self {
        let bits = self.bits();
        let dir = if bits == 0 {
            if let Some(seg) = self.segments().first() {
                seg.clone().into_raw()
            } else {
                ptr::null_mut()
            }
        } else {
            let segs: Box<[Segment<K>]> = self.segments().to_vec().into_boxed_slice();
            Box::into_raw(segs).cast()
        };
        Table {
            dir,
            meta: self.meta,
            _kind: PhantomData,
        }
    }
}

impl<K: Kind> Drop for Table<K> {
    fn drop(&mut self) {
        drop(self.take_segments());
    }
}

impl Table<Bytes> {
    /// The value of (key, ns).
    #[inline]
    pub fn get(&self, key: &[u8], ns: &[u8]) -> Option<&[u8]> {
        let (seg, i) = self.lookup(key, ns)?;
        // SAFETY: a live slot of a segment borrowed for self's lifetime.
        Some(unsafe { slot_value(seg.slot(i)) })
    }

    /// Sets the value of (key, ns).
    #[inline]
    pub fn set(&mut self, key: &[u8], ns: &[u8], value: &[u8]) {
        let h = hash(key, ns);
        let (s, i, inserted) = self.upsert(h, key, ns, value);
        if !inserted {
            self.rewrite(h, s, i, key, ns, value);
        }
    }

    /// Appends `bytes` to the value of (key, ns) (creating it).
    pub fn append(&mut self, key: &[u8], ns: &[u8], bytes: &[u8]) {
        let h = hash(key, ns);
        let (s, i, inserted) = self.upsert(h, key, ns, bytes);
        if inserted {
            return;
        }
        let seg = &mut self.segments_mut()[s];
        let slot = seg.slot(i);
        // SAFETY: a live slot of a unique segment.
        unsafe {
            if *slot == HEAP {
                edit_heap(slot, |r| r.append(bytes));
                return;
            }
            let (kl, nl, vl) = (*slot as usize, *slot.add(1) as usize, *slot.add(2) as usize);
            let new_len = vl + bytes.len();
            if new_len <= u8::MAX as usize && 3 + kl + nl + new_len <= seg.width() - Bytes::TAIL {
                ptr::copy_nonoverlapping(bytes.as_ptr(), slot.add(3 + kl + nl + vl), bytes.len());
                *slot.add(2) = new_len as u8;
                return;
            }
            // A growing list moves to the heap rather than widening every slot.
            let (k, n) = slot_key(slot);
            let mut record = HeapRecord::new(k, n, slot_value(slot), new_len);
            record.append(bytes);
            put_heap(slot, seg.width(), record);
            seg.header_mut().heap += 1;
        }
    }

    /// Replaces the value of the live slot `i` of unique segment `s`: inline if it
    /// fits or can fit by widening the segment, on the heap otherwise.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(&mut self, h: u64, s: usize, i: usize, key: &[u8], ns: &[u8], value: &[u8]) {
        let seg = &mut self.segments_mut()[s];
        let mut slot = seg.slot(i);
        // SAFETY: a live slot of a unique segment; widening keeps it live (found
        // again); every write stays within the slot's width.
        unsafe {
            if *slot == HEAP {
                edit_heap(slot, |r| r.set_value(value));
                return;
            }
            match placement::<Bytes>(key.len(), ns.len(), value.len()) {
                Placement::Inline(need) => {
                    if need > seg.width() {
                        let cap = seg.cap();
                        let old = std::mem::replace(seg, Segment::new(MIN_CAPACITY, 1));
                        *seg = old.rebuilt(cap, need);
                        slot = seg.slot(seg.find(h, key, ns).expect("present"));
                    }
                    let at = slot.add(3 + key.len() + ns.len());
                    ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
                    *slot.add(2) = value.len() as u8;
                }
                Placement::Heap => {
                    put_heap(slot, seg.width(), HeapRecord::new(key, ns, value, 0));
                    seg.header_mut().heap += 1;
                }
            }
        }
    }

    /// Every (key, namespace, value).
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(&'a [u8], &'a [u8], &'a [u8])) {
        self.for_each_slot(|slot, _| {
            // SAFETY: live slots of segments borrowed for 'a.
            unsafe {
                let (k, n) = slot_key(slot);
                f(k, n, slot_value(slot));
            }
        });
    }

    /// Every entry until `f` fails.
    pub fn try_for_each<'a, E>(
        &'a self,
        mut f: impl FnMut(&'a [u8], &'a [u8], &'a [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for seg in self.segments() {
            for i in 0..seg.cap() {
                if seg.is_full(i) {
                    let slot = seg.slot(i);
                    // SAFETY: a live slot of a segment borrowed for 'a.
                    unsafe {
                        let (k, n) = slot_key(slot);
                        f(k, n, slot_value(slot))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The value of a live byte-table slot.
///
/// # Safety
/// `slot` must be a live slot of a byte table; its bytes outlive `'a`.
#[inline(always)]
unsafe fn slot_value<'a>(slot: *const u8) -> &'a [u8] {
    // SAFETY: as slot_key.
    unsafe {
        let kl = *slot;
        if kl == HEAP {
            heap_record(slot).value()
        } else {
            let start = 3 + kl as usize + *slot.add(1) as usize;
            std::slice::from_raw_parts(slot.add(start), *slot.add(2) as usize)
        }
    }
}

impl Table<Maps> {
    /// The map of (key, ns).
    #[inline]
    pub fn get(&self, key: &[u8], ns: &[u8]) -> Option<&ByteTable> {
        let (seg, i) = self.lookup(key, ns)?;
        // SAFETY: a live slot's tail holds its table, borrowed with self.
        Some(unsafe { &*map_of(seg.slot(i), seg.width()) })
    }

    /// The map of (key, ns) for writing; a miss copies nothing.
    pub fn get_mut(&mut self, key: &[u8], ns: &[u8]) -> Option<&mut ByteTable> {
        let h = hash(key, ns);
        let s = self.segment_index(h);
        let seg = self.segments_mut().get_mut(s)?;
        let i = seg.find(h, key, ns)?;
        seg.make_mut();
        // SAFETY: a live slot of a unique segment, borrowed mutably with self.
        Some(unsafe { &mut *map_of(seg.slot(i), seg.width()) })
    }

    /// The map of (key, ns), created empty when absent.
    pub fn get_or_insert(&mut self, key: &[u8], ns: &[u8]) -> &mut ByteTable {
        let h = hash(key, ns);
        let (s, i, _) = self.upsert(h, key, ns, &[]);
        let seg = &mut self.segments_mut()[s];
        // SAFETY: a live slot (a new one got an empty table) of a unique segment,
        // borrowed mutably with self.
        unsafe { &mut *map_of(seg.slot(i), seg.width()) }
    }

    /// Every (key, namespace, map).
    pub fn try_for_each<'a, E>(
        &'a self,
        mut f: impl FnMut(&'a [u8], &'a [u8], &'a ByteTable) -> Result<(), E>,
    ) -> Result<(), E> {
        for seg in self.segments() {
            for i in 0..seg.cap() {
                if seg.is_full(i) {
                    let slot = seg.slot(i);
                    // SAFETY: a live slot of a segment borrowed for 'a.
                    unsafe {
                        let (k, n) = slot_key(slot);
                        f(k, n, &*map_of(slot, seg.width()))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The nested table in a map slot's tail.
#[inline(always)]
fn map_of(slot: *mut u8, width: usize) -> *mut ByteTable {
    // SAFETY (of the callers' dereference): the tail is 8-aligned within the slot.
    slot.wrapping_add(width - Maps::TAIL).cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Model = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

    fn contents(t: &ByteTable) -> Model {
        let mut m = Model::new();
        t.for_each(|k, n, v| {
            assert!(m.insert((k.to_vec(), n.to_vec()), v.to_vec()).is_none());
        });
        m
    }

    /// The layout's invariants: counts, fill, mirrors, widths, and every entry
    /// found where it is (nested tables too).
    fn check_layout<K: Kind>(t: &Table<K>) {
        let mut total = 0;
        for (s, seg) in t.segments().iter().enumerate() {
            let (hd, cap, width) = (seg.header(), seg.cap(), seg.width());
            // SAFETY: the control bytes of a segment we borrow.
            let ctrl = unsafe { std::slice::from_raw_parts(seg.ctrl(), cap + GROUP) };
            let live = ctrl[..cap].iter().filter(|&&c| c < 0x80).count();
            let deleted = ctrl[..cap].iter().filter(|&&c| c == DELETED).count();
            assert_eq!((live, deleted), (hd.len as usize, hd.deleted as usize));
            assert!(live + deleted <= max_fill(cap) && ctrl[..cap].contains(&EMPTY));
            for m in 0..GROUP {
                assert_eq!(ctrl[cap + m], ctrl[m % cap], "mirror {m} of {cap}");
            }
            assert!(width >= K::width(3), "{width}");
            let mut heap = 0;
            seg.for_each_live(|slot| {
                // SAFETY: a live slot.
                unsafe {
                    let (key, ns) = slot_key(slot);
                    let h = hash(key, ns);
                    assert_eq!(t.segment_index(h), s);
                    assert_eq!(seg.slot(seg.find(h, key, ns).unwrap()), slot);
                    assert!(head_len(slot) <= width - K::TAIL);
                    heap += (*slot == HEAP) as u32;
                    if K::TAIL > 0 {
                        check_layout(&*map_of(slot, width));
                    }
                }
            });
            assert_eq!(heap, hd.heap);
            total += live;
        }
        assert_eq!(total, t.len());
    }

    fn check(t: &ByteTable, m: &Model) {
        check_layout(t);
        assert_eq!(t.len(), m.len());
        assert_eq!(&contents(t), m);
        for ((k, n), v) in m {
            assert_eq!(t.get(k, n), Some(&v[..]));
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u16, u8, Vec<u8>),
        Append(u16, u8, Vec<u8>),
        Remove(u16, u8),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        let value = prop::collection::vec(any::<u8>(), 0..70);
        prop_oneof![
            4 => (0u16..3000, 0u8..3, value.clone()).prop_map(|(k, n, v)| Op::Set(k, n, v)),
            2 => (0u16..3000, 0u8..3, prop::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(k, n, v)| Op::Append(k, n, v)),
            3 => (0u16..3000, 0u8..3).prop_map(|(k, n)| Op::Remove(k, n)),
            1 => Just(Op::Snapshot),
        ]
    }

    /// Keys of many lengths (1 to 300 bytes: inline and heap) from a number.
    fn key(k: u16) -> Vec<u8> {
        let len = match k % 7 {
            0 => 300,
            _ => 1 + (k as usize % 23),
        };
        k.to_be_bytes().iter().copied().cycle().take(len).collect()
    }

    fn ns(n: u8) -> Vec<u8> {
        vec![n; n as usize]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn behaves_like_a_map_and_snapshots_stay_frozen(
            ops in prop::collection::vec(op(), 0..8000),
        ) {
            let mut table = ByteTable::new();
            let mut model = Model::new();
            let mut frozen = Vec::new();
            for op in ops {
                match op {
                    Op::Set(k, n, v) => {
                        table.set(&key(k), &ns(n), &v);
                        model.insert((key(k), ns(n)), v);
                    }
                    Op::Append(k, n, v) => {
                        table.append(&key(k), &ns(n), &v);
                        model.entry((key(k), ns(n))).or_default().extend_from_slice(&v);
                    }
                    Op::Remove(k, n) => {
                        let was = model.remove(&(key(k), ns(n))).is_some();
                        prop_assert_eq!(table.remove(&key(k), &ns(n)), was);
                    }
                    Op::Snapshot => {
                        if frozen.len() < 4 {
                            frozen.push((table.clone(), model.clone()));
                        }
                    }
                }
            }
            check(&table, &model);
            for (t, m) in &frozen {
                check(t, m);
            }
        }

        #[test]
        fn maps_of_maps_copy_on_write(
            ops in prop::collection::vec((0u16..400, 0u8..12, prop::option::of(any::<u8>()), any::<bool>()), 0..3000),
        ) {
            let mut table = MapTable::new();
            let mut model: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
            let mut frozen = Vec::new();
            for (k, uk, v, snap) in ops {
                let (k, uk) = (key(k), vec![uk; uk as usize + 1]);
                if snap && frozen.len() < 3 {
                    frozen.push((table.clone(), model.clone()));
                }
                match v {
                    Some(v) => {
                        table.get_or_insert(&k, b"").set(&uk, b"", &[v]);
                        model.entry(k).or_default().insert(uk, vec![v]);
                    }
                    None => {
                        if let Some(m) = table.get_mut(&k, b"") {
                            m.remove(&uk, b"");
                            if m.is_empty() {
                                table.remove(&k, b"");
                            }
                        }
                        if let Some(m) = model.get_mut(&k) {
                            m.remove(&uk);
                            if m.is_empty() {
                                model.remove(&k);
                            }
                        }
                    }
                }
            }
            let dump = |t: &MapTable| {
                let mut out: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
                t.try_for_each::<()>(|k, n, m| {
                    assert!(n.is_empty());
                    let inner = out.entry(k.to_vec()).or_default();
                    m.for_each(|uk, _, v| {
                        inner.insert(uk.to_vec(), v.to_vec());
                    });
                    assert_eq!(m.len(), inner.len());
                    Ok(())
                }).unwrap();
                out
            };
            check_layout(&table);
            prop_assert_eq!(&dump(&table), &model);
            prop_assert_eq!(table.len(), model.len());
            for (t, m) in &frozen {
                check_layout(t);
                prop_assert_eq!(&dump(t), m);
            }
        }
    }

    /// Records shorter than a heap slot (a marker and a pointer) that later move to
    /// the heap, by a long value or by appends: a list's first element is short.
    #[test]
    fn short_records_move_to_the_heap_without_touching_their_neighbours() {
        let keys: Vec<[u8; 2]> = (0u16..1500).map(u16::to_be_bytes).collect();
        let mut t = ByteTable::new();
        let mut model = Model::new();
        for k in &keys {
            // 3 length bytes and a 2-byte key: 5-byte slots.
            t.set(k, b"", b"");
            model.insert((k.to_vec(), vec![]), vec![]);
        }
        let snapshot = (t.clone(), model.clone());
        for (i, k) in keys.iter().enumerate() {
            let v = model.get_mut(&(k.to_vec(), vec![])).unwrap();
            if i % 2 == 0 {
                t.set(k, b"", &[7; 100]);
                *v = vec![7; 100];
            } else {
                t.append(k, b"", &[1; 60]);
                v.extend_from_slice(&[1; 60]);
            }
        }
        check(&t, &model);
        check(&snapshot.0, &snapshot.1);

        // A list in a 7-byte slot (1-byte key, one 2-byte element) growing past it.
        let mut lists = ByteTable::new();
        lists.append(b"a", b"", &[2, 0, 1]);
        lists.append(b"a", b"", &[2, 1, 2]);
        lists.append(b"b", b"", &[2, 0, 9]);
        assert_eq!(lists.get(b"a", b""), Some(&[2, 0, 1, 2, 1, 2][..]));
        assert_eq!(lists.get(b"b", b""), Some(&[2, 0, 9][..]));
    }

    /// The asynchronous snapshot phase: clones read (and finally dropped) on another
    /// thread while the task thread keeps writing, through copies, rebuilds, splits,
    /// heap records and nested maps.
    #[test]
    fn snapshots_read_on_another_thread_while_the_table_changes() {
        type Maps = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;
        fn check_maps(t: &MapTable, m: &Maps) {
            check_layout(t);
            assert_eq!(t.len(), m.len());
            for (k, inner) in m {
                let map = t.get(k, b"").unwrap();
                assert_eq!(map.len(), inner.len());
                for (uk, v) in inner {
                    assert_eq!(map.get(uk, b""), Some(&v[..]));
                }
            }
        }
        let (mut t, mut model) = (ByteTable::new(), Model::new());
        let (mut maps, mut maps_model) = (MapTable::new(), Maps::new());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..12 {
            let snapshot = (t.clone(), model.clone(), maps.clone(), maps_model.clone());
            let reader = std::thread::spawn(move || {
                let (t, model, maps, maps_model) = snapshot;
                check(&t, &model);
                check_maps(&maps, &maps_model);
            });
            for _ in 0..4000 {
                let k = next(6000).to_be_bytes()[5..].to_vec();
                let v = vec![next(256) as u8; [0, 1, 8, 60, 300][next(5) as usize]];
                match next(6) {
                    0 | 1 => {
                        t.set(&k, b"", &v);
                        model.insert((k, vec![]), v);
                    }
                    2 => {
                        t.append(&k, b"", &v);
                        model.entry((k, vec![])).or_default().extend(v);
                    }
                    3 => {
                        let was = model.remove(&(k.clone(), vec![])).is_some();
                        assert_eq!(t.remove(&k, b""), was);
                    }
                    4 => {
                        let uk = [next(4) as u8];
                        maps.get_or_insert(&k[1..], b"").set(&uk, b"", &v);
                        maps_model
                            .entry(k[1..].to_vec())
                            .or_default()
                            .insert(uk.to_vec(), v);
                    }
                    _ => {
                        let uk = [next(4) as u8];
                        if let Some(m) = maps.get_mut(&k[1..], b"") {
                            m.remove(&uk, b"");
                            if m.is_empty() {
                                maps.remove(&k[1..], b"");
                            }
                        }
                        if let Some(m) = maps_model.get_mut(&k[1..]) {
                            m.remove(&uk[..]);
                            if m.is_empty() {
                                maps_model.remove(&k[1..]);
                            }
                        }
                    }
                }
            }
            reader.join().unwrap();
        }
        check(&t, &model);
        check_maps(&maps, &maps_model);
    }

    #[test]
    fn rebuilt_segments_have_room() {
        for n in 1..300_000 {
            let cap = capacity_for(n);
            assert!(max_fill(cap) >= n && max_fill(cap) < cap, "{n}");
        }
    }

    /// Splitting small segments, whose halves are far from even.
    #[test]
    fn small_segments_split_by_their_counts() {
        for n in 1..40u64 {
            let mut t = ByteTable::new();
            let mut maps = MapTable::new();
            let mut model = Model::new();
            for k in 0..n {
                t.set(&k.to_be_bytes(), b"", &[k as u8; 30]);
                maps.get_or_insert(&k.to_be_bytes(), b"")
                    .set(b"u", b"", b"v");
                model.insert((k.to_be_bytes().to_vec(), vec![]), vec![k as u8; 30]);
            }
            for _ in 0..8 {
                let before = (t.clone(), maps.clone());
                t.split();
                maps.split();
                check(&t, &model);
                check(&before.0, &model);
                check_layout(&maps);
                check_layout(&before.1);
            }
            assert_eq!(t.bits(), 8);
        }
    }

    #[test]
    fn grows_splits_and_keeps_everything() {
        const N: u64 = 200_000;
        let mut t = ByteTable::new();
        for k in 0u64..N {
            t.set(&k.to_be_bytes(), b"", &k.to_le_bytes());
        }
        let snapshot = t.clone();
        for k in 0u64..N {
            if k % 3 == 0 {
                assert!(t.remove(&k.to_be_bytes(), b""));
            } else {
                t.set(&k.to_be_bytes(), b"", &[1; 40]);
            }
        }
        assert_eq!(t.len(), N as usize - (N as usize).div_ceil(3));
        for k in 0u64..N {
            assert_eq!(
                snapshot.get(&k.to_be_bytes(), b""),
                Some(&k.to_le_bytes()[..])
            );
            let expected = (k % 3 != 0).then_some(&[1u8; 40][..]);
            assert_eq!(t.get(&k.to_be_bytes(), b""), expected);
        }
        assert!(t.bits() >= 5);
    }
}
