//! The global allocator: mimalloc, called through its plain entry points wherever they give the alignment a
//! layout asks for.
//!
//! The `mimalloc` crate's `GlobalAlloc` calls the aligned entry points (`mi_malloc_aligned`) for every
//! allocation. Those try one fast path and otherwise go through a generic path before reaching the same
//! allocation `mi_malloc` makes, on a path the correlator and the parsers take millions of times: the
//! plain entry points took 2.1% off a replay's instructions and 8% off the correlator's per-event work
//! (docs/benchmarks.md, fourteenth sitting).

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// mimalloc's blocks of 16 bytes or more are 16-byte aligned, and smaller ones are aligned to their
/// size class (8 bytes); `MI_MAX_ALIGN_SIZE` and the block alignment assertions in its `alloc.c`.
const PLAIN_ALIGN: usize = 16;

/// Whether `mi_malloc(size)` returns memory aligned to `align`: any block is aligned to at least the
/// largest power of two, up to 16, that does not exceed its size.
fn plain_fits(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

pub struct MiMalloc;

// SAFETY: every pointer handed out comes from mimalloc and is released or resized only by mimalloc;
// alignment is either guaranteed by the block size (`plain_fits`) or asked for explicitly.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain_fits(layout.size(), layout.align()) {
            mi_malloc(layout.size()) as *mut u8
        } else {
            mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain_fits(layout.size(), layout.align()) {
            mi_zalloc(layout.size()) as *mut u8
        } else {
            mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain_fits(new_size, layout.align()) {
            mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a program may ask for comes back aligned, through allocation, zeroed
    /// allocation and growing and shrinking reallocation, with its contents kept.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_contents() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [
                1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 48, 100, 1000, 5000, 70_000,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size} aligned {align}");
                    std::ptr::write_bytes(p, 0xab, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "alloc_zeroed {size} aligned {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                    a.dealloc(z, layout);
                    for new_size in [size * 3, size.div_ceil(2)] {
                        let layout = Layout::from_size_align(size, align).unwrap();
                        let q = a.alloc(layout);
                        std::ptr::write_bytes(q, 0x5c, size);
                        let r = a.realloc(q, layout, new_size);
                        assert_eq!(
                            r as usize % align,
                            0,
                            "realloc {size}→{new_size} aligned {align}"
                        );
                        let kept = size.min(new_size);
                        assert!(std::slice::from_raw_parts(r, kept)
                            .iter()
                            .all(|&b| b == 0x5c));
                        a.dealloc(r, Layout::from_size_align(new_size, align).unwrap());
                    }
                    a.dealloc(p, layout);
                }
            }
        }
    }
}
