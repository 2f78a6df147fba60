//! A record too long for a table slot: key, namespace and value in one reference
//! counted allocation, shared by the segment copies that hold it and grown in place
//! (a list's appends) while unshared. One allocation, so reading it costs one
//! pointer to follow, not two.

use std::alloc::{alloc, dealloc, handle_alloc_error, realloc, Layout};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{fence, AtomicUsize, Ordering};

#[repr(C)]
struct Header {
    refs: AtomicUsize,
    /// Bytes allocated after the header.
    cap: usize,
    /// Bytes used: `key ‖ namespace ‖ value`.
    len: usize,
    key_len: u32,
    ns_len: u32,
}

const HEADER: usize = size_of::<Header>();

fn layout(cap: usize) -> Layout {
    Layout::from_size_align(HEADER + cap, align_of::<Header>()).expect("record size overflow")
}

/// An owned reference to a heap record.
pub(super) struct HeapRecord {
    ptr: NonNull<Header>,
}

// SAFETY: a shared record is never written (writers copy it first); the count is atomic.
unsafe impl Send for HeapRecord {}
// SAFETY: as above.
unsafe impl Sync for HeapRecord {}

/// A borrowed heap record.
#[derive(Clone, Copy)]
pub(super) struct RecordRef<'a> {
    ptr: NonNull<Header>,
    _life: PhantomData<&'a [u8]>,
}

impl<'a> RecordRef<'a> {
    /// # Safety
    /// `raw` comes from [`HeapRecord::into_raw`] and its reference outlives `'a`.
    #[inline]
    pub unsafe fn from_raw(raw: *const u8) -> Self {
        RecordRef {
            // SAFETY: into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw as *mut Header) },
            _life: PhantomData,
        }
    }

    #[inline]
    fn header(&self) -> &'a Header {
        // SAFETY: a live record for 'a.
        unsafe { &*self.ptr.as_ptr() }
    }

    #[inline]
    fn bytes(&self, from: usize, to: usize) -> &'a [u8] {
        // SAFETY: from..to lies within the used bytes after the header.
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(HEADER + from), to - from)
        }
    }

    #[inline]
    pub fn key(&self) -> &'a [u8] {
        self.bytes(0, self.header().key_len as usize)
    }

    #[inline]
    pub fn ns(&self) -> &'a [u8] {
        let h = self.header();
        self.bytes(h.key_len as usize, (h.key_len + h.ns_len) as usize)
    }

    #[inline]
    pub fn value(&self) -> &'a [u8] {
        let h = self.header();
        self.bytes((h.key_len + h.ns_len) as usize, h.len)
    }
}

impl HeapRecord {
    /// A record of `key ‖ ns ‖ value`, with room for `spare` more value bytes.
    pub fn new(key: &[u8], ns: &[u8], value: &[u8], spare: usize) -> Self {
        let len = key.len() + ns.len() + value.len();
        let cap = len + spare;
        let layout = layout(cap);
        // SAFETY: the layout is non-zero (the header).
        let p = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(p.cast::<Header>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: fresh allocation: header, then cap >= len bytes.
        unsafe {
            ptr.as_ptr().write(Header {
                refs: AtomicUsize::new(1),
                cap,
                len,
                key_len: u32::try_from(key.len()).expect("keys are limited to 1 GiB"),
                ns_len: u32::try_from(ns.len()).expect("namespaces are limited to 1 GiB"),
            });
            let mut d = p.add(HEADER);
            for part in [key, ns, value] {
                ptr::copy_nonoverlapping(part.as_ptr(), d, part.len());
                d = d.add(part.len());
            }
        }
        HeapRecord { ptr }
    }

    /// The pointer, owning this reference.
    pub fn into_raw(self) -> *const u8 {
        std::mem::ManuallyDrop::new(self).ptr.as_ptr().cast()
    }

    /// # Safety
    /// `raw` comes from [`HeapRecord::into_raw`]; takes over that reference.
    pub unsafe fn from_raw(raw: *const u8) -> Self {
        HeapRecord {
            // SAFETY: into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw as *mut Header) },
        }
    }

    /// Takes one more reference to the record at `raw`.
    ///
    /// # Safety
    /// `raw` is a live record.
    pub unsafe fn increment(raw: *const u8) {
        // SAFETY: a live record's header.
        unsafe { &*(raw as *const Header) }
            .refs
            .fetch_add(1, Ordering::Relaxed);
    }

    fn header(&self) -> &Header {
        // SAFETY: a live record.
        unsafe { self.ptr.as_ref() }
    }

    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            ptr: self.ptr,
            _life: PhantomData,
        }
    }

    /// Makes the record unshared (copying it, with room for `spare` more bytes).
    fn make_mut(&mut self, spare: usize) {
        if self.header().refs.load(Ordering::Acquire) != 1 {
            let r = self.as_ref();
            *self = HeapRecord::new(r.key(), r.ns(), r.value(), spare);
        }
    }

    /// Makes room for `extra` more bytes, doubling so that appends are amortised.
    fn reserve(&mut self, extra: usize) {
        let (cap, len) = (self.header().cap, self.header().len);
        if len + extra <= cap {
            return;
        }
        let new_cap = (len + extra).max(cap * 2);
        let new_layout = layout(new_cap);
        // SAFETY: an unshared record allocated with layout(cap).
        let p = unsafe { realloc(self.ptr.as_ptr().cast(), layout(cap), new_layout.size()) };
        let Some(ptr) = NonNull::new(p.cast::<Header>()) else {
            handle_alloc_error(new_layout)
        };
        self.ptr = ptr;
        // SAFETY: now unshared and live.
        unsafe { self.ptr.as_mut() }.cap = new_cap;
    }

    /// Appends to the value.
    pub fn append(&mut self, bytes: &[u8]) {
        self.make_mut(bytes.len());
        self.reserve(bytes.len());
        // SAFETY: unshared, with room for bytes after the used ones.
        unsafe {
            let h = self.ptr.as_mut();
            let end = self.ptr.as_ptr().cast::<u8>().add(HEADER + h.len);
            ptr::copy_nonoverlapping(bytes.as_ptr(), end, bytes.len());
            h.len += bytes.len();
        }
    }

    /// Replaces the value.
    pub fn set_value(&mut self, value: &[u8]) {
        self.make_mut(0);
        // SAFETY: unshared and live; the value is dropped, then appended anew.
        unsafe {
            let h = self.ptr.as_mut();
            h.len = (h.key_len + h.ns_len) as usize;
        }
        self.append(value);
    }
}

impl Drop for HeapRecord {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let cap = self.header().cap;
        // SAFETY: the last reference; allocated with layout(cap).
        unsafe { dealloc(self.ptr.as_ptr().cast(), layout(cap)) };
    }
}
