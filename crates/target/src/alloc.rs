//! Keep data buffers warm. Every command's data buffer (the store reads into it; a Data-In
//! payload is sent from it) is freed when the reply is written, and the next command of the same
//! size takes it back from the loop thread's malloc arena. By default glibc serves blocks of
//! 128 KiB and more with a fresh `mmap` and hands freed heap tops back to the kernel, so every
//! large command would page-fault its buffer in again (zeroed by the kernel, then by the
//! caller). Raising both thresholds makes the arena of each event loop its buffer pool.

/// Blocks up to this size come from the arena, not from `mmap`.
const MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
/// Free memory at the top of an arena is kept up to this much.
const TRIM_THRESHOLD: i32 = 512 * 1024 * 1024;

/// Applies the thresholds (once per process; later calls change nothing).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_buffers_warm() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes allocator tunables; it takes two plain integers and is
        // called before the event loop threads start allocating.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        if !ok {
            log::debug!("mallopt refused the buffer thresholds");
        }
    });
}

/// Other allocators manage their own caches.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_buffers_warm() {}
