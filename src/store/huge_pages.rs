//! An allocator for large hash tables that asks for transparent huge pages.
//!
//! Why: a probe into a table of millions of entries is a random access to tens of
//! megabytes. With 4 KiB pages each one misses the TLB as well as the cache, and
//! the page walk costs about as much as the miss itself; with 2 MiB pages the
//! table's page entries stay in the TLB. Linux grants huge pages to mappings
//! marked `MADV_HUGEPAGE` when `/sys/kernel/mm/transparent_hugepage/enabled` is
//! `madvise` or `always`; elsewhere the mapping simply keeps 4 KiB pages.

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};
use std::ptr::NonNull;

/// Allocations from this size on are mapped on their own, aligned to a huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Small allocations from the global allocator; large ones mapped, huge-page aligned
/// and marked for transparent huge pages.
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePages;

fn mapped_len(layout: Layout) -> usize {
    layout.size().next_multiple_of(HUGE_PAGE)
}

unsafe impl Allocator for HugePages {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() < HUGE_PAGE || layout.align() > HUGE_PAGE {
            return Global.allocate(layout);
        }
        let len = mapped_len(layout);
        // One huge page more than needed, then the unaligned ends are returned.
        let span = len + HUGE_PAGE;
        // SAFETY: an anonymous private mapping; no memory of ours is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(AllocError);
        }
        let base = p as usize;
        let start = base.next_multiple_of(HUGE_PAGE);
        let head = start - base;
        // SAFETY: both ranges lie inside the mapping just made and are not used.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if HUGE_PAGE - head > 0 {
                libc::munmap((start + len) as *mut libc::c_void, HUGE_PAGE - head);
            }
            // Advice only: without huge pages the mapping works the same.
            #[cfg(target_os = "linux")]
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        let ptr = NonNull::new(start as *mut u8).ok_or(AllocError)?;
        Ok(NonNull::slice_from_raw_parts(ptr, len))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() < HUGE_PAGE || layout.align() > HUGE_PAGE {
            // SAFETY: allocated by `Global` with this layout (see `allocate`).
            return unsafe { Global.deallocate(ptr, layout) };
        }
        // SAFETY: the mapping `allocate` made for this layout.
        unsafe {
            libc::munmap(ptr.as_ptr().cast(), mapped_len(layout));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_allocations_are_huge_page_aligned_and_usable() {
        for size in [16, HUGE_PAGE - 1, HUGE_PAGE, 3 * HUGE_PAGE + 5] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            let block = HugePages.allocate(layout).unwrap();
            assert!(block.len() >= size);
            let p = block.cast::<u8>().as_ptr();
            if size >= HUGE_PAGE {
                assert_eq!(p as usize % HUGE_PAGE, 0);
            }
            // SAFETY: the block is at least `size` bytes, ours until deallocated.
            unsafe {
                p.write_bytes(0xab, size);
                assert_eq!(*p.add(size - 1), 0xab);
                HugePages.deallocate(block.cast(), layout);
            }
        }
    }
}
