//! The memory budget of a run: a counting global allocator and the per-thread account it feeds.
//!
//! Every heap allocation made by this library (Rhai's values, strings, arrays, maps, closures,
//! our conversions) goes through [`CountingAllocator`]. While a run is in progress on a thread,
//! the bytes it allocates minus the bytes it frees are added to that thread's account; the
//! engine's `on_progress` hook (see [`crate::state`]) stops the run, uncatchably, once the
//! account passes the run's `max_memory_bytes`. The allocator itself never refuses memory
//! (a refused allocation aborts a Rust process): the budget is enforced between operations, and
//! one operation allocates at most about one `max_string_size` or one array/map copy.
//!
//! Memory freed on another thread than the one that allocated it is not credited back, and
//! Python's own objects (made by CPython's allocator) are not counted: the account is an upper
//! bound of what the run's values hold, which is what a budget needs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    // `const` thread-locals without destructors: safe to touch from inside the allocator
    // (no lazy initialisation, no allocation, usable during thread teardown).
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The global allocator of the library: the system allocator, counting per thread.
pub struct CountingAllocator;

#[inline]
fn account(delta: isize) {
    // `try_with`: during thread teardown the thread-locals may be gone; nothing to count then.
    let _ = TRACKING.try_with(|tracking| {
        if tracking.get() {
            let live = LIVE.get().saturating_add(delta);
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
        }
    });
}

// SAFETY: every method forwards to `System` unchanged; the accounting touches only `Cell`s of
// const thread-locals, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            account(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            account(layout.size() as isize);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = System.realloc(ptr, layout, new_size);
        if !new.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// The account of the run in progress on this thread, saved and restored around nested runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Account {
    tracking: bool,
    live: isize,
    peak: isize,
}

/// Start a fresh account for a run on this thread; returns the one it replaces.
pub fn begin() -> Account {
    let saved = current();
    TRACKING.set(true);
    LIVE.set(0);
    PEAK.set(0);
    saved
}

/// What an ended account saw: the most it held at once, and its net allocation at the end
/// (negative when it freed more than it allocated).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub peak: usize,
    pub net: isize,
}

/// End this thread's run account, restoring `saved`; returns what the ended one saw.
///
/// The ended run's net allocation is carried into the restored account (a nested run's values
/// that outlive it are the outer run's to hold).
pub fn end(saved: Account) -> Usage {
    let ended = current();
    TRACKING.set(saved.tracking);
    let live = saved.live.saturating_add(ended.live.max(0));
    LIVE.set(live);
    PEAK.set(saved.peak.max(live));
    Usage { peak: ended.peak.max(0) as usize, net: ended.live }
}

/// Bytes that runs of this process left allocated after everything they returned was
/// released: reference cycles (a closure that captures itself), which nothing can free.
static LEFT_BEHIND: AtomicUsize = AtomicUsize::new(0);

/// Add a run's left-behind bytes to the process's total.
pub fn note_left_behind(bytes: usize) {
    LEFT_BEHIND.fetch_add(bytes, Ordering::Relaxed);
}

/// Bytes runs of this process left behind so far (see [`note_left_behind`]).
pub fn left_behind_bytes() -> usize {
    LEFT_BEHIND.load(Ordering::Relaxed)
}

fn current() -> Account {
    Account { tracking: TRACKING.get(), live: LIVE.get(), peak: PEAK.get() }
}

/// Bytes the run in progress on this thread holds now (0 when no run is in progress).
#[inline]
pub fn live_bytes() -> usize {
    if TRACKING.get() {
        LIVE.get().max(0) as usize
    } else {
        0
    }
}

/// Run `f` with this thread's run account paused: what it allocates or frees is not counted.
pub fn untracked<T>(f: impl FnOnce() -> T) -> T {
    let tracking = TRACKING.replace(false);
    let result = f();
    TRACKING.set(tracking);
    result
}

/// Give freed heap memory back to the operating system (glibc keeps it otherwise).
pub fn release_to_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
