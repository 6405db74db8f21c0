//! The host side of the handler interface: the `tcmu_*` and `tcmur_*` functions the handlers
//! import (libtcmu's accessors, configfs stand-ins, CDB, iovec and sense helpers, the notify
//! functions and the command completion), exported from the executable by the dynamic symbol
//! list (`exports.dynlist`). The five variadic `tcmu_*_message` functions are in
//! `csrc/shim.c`, which forwards to [`crate::log_sink`].
//!
//! Every function catches panics (a panic must not unwind into C) and tolerates a NULL or
//! foreign device pointer by returning a neutral value.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use libc::{iovec, off_t, size_t};

use crate::abi::{sts, DevPtr, TcmurHandler, LOCK_STATE_UNLOCKED};
use crate::device::HostDevice;

/// Runs `f`, turning a panic into `fallback` (and a log line).
fn guard<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            log::error!("tcmu: {what} panicked; returning a neutral value to the handler");
            fallback
        }
    }
}

/// Runs `f` with the device behind `dev`, or returns `fallback` for NULL or a foreign pointer.
fn with_dev<T>(what: &str, dev: DevPtr, fallback: T, f: impl FnOnce(&HostDevice) -> T) -> T {
    // SAFETY: handlers pass back only the pointers the host gave them, for devices the host
    // keeps alive while the handler may call back (see `HostDevice::from_ptr`).
    match unsafe { HostDevice::from_ptr(dev) } {
        Some(d) => guard(what, fallback, || f(d)),
        None => fallback,
    }
}

/// The iovec array of `cnt` entries at `iov` (empty for NULL).
///
/// # Safety
/// `iov` must be NULL or point to `cnt` valid entries, not otherwise borrowed.
unsafe fn iov_slice<'a>(iov: *mut iovec, cnt: size_t) -> &'a mut [iovec] {
    if iov.is_null() || cnt == 0 {
        return &mut [];
    }
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts_mut(iov, cnt) }
}

// ---------------------------------------------------------------------------------------------
// Registration and private data.

/// `int tcmur_register_handler(struct tcmur_handler *)`.
#[no_mangle]
extern "C" fn tcmur_register_handler(handler: *mut TcmurHandler) -> c_int {
    guard("tcmur_register_handler", -1, || {
        crate::loader::register(handler)
    })
}

/// `void *tcmur_dev_get_private(struct tcmu_device *)`: the handler's per-device pointer.
#[no_mangle]
extern "C" fn tcmur_dev_get_private(dev: DevPtr) -> *mut c_void {
    with_dev("tcmur_dev_get_private", dev, std::ptr::null_mut(), |d| {
        d.private()
    })
}

/// `void tcmur_dev_set_private(struct tcmu_device *, void *)`.
#[no_mangle]
extern "C" fn tcmur_dev_set_private(dev: DevPtr, private: *mut c_void) {
    with_dev("tcmur_dev_set_private", dev, (), |d| d.set_private(private))
}

/// `void *tcmu_dev_get_private(struct tcmu_device *)`: the runner-device block (rbd reads its
/// counters and lock state).
#[no_mangle]
extern "C" fn tcmu_dev_get_private(dev: DevPtr) -> *mut c_void {
    with_dev("tcmu_dev_get_private", dev, std::ptr::null_mut(), |d| {
        d.runner_ptr()
    })
}

// ---------------------------------------------------------------------------------------------
// Geometry and attributes.

/// `char *tcmu_dev_get_cfgstring(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_cfgstring(dev: DevPtr) -> *mut c_char {
    with_dev("tcmu_dev_get_cfgstring", dev, std::ptr::null_mut(), |d| {
        d.cfgstring_ptr()
    })
}

/// `uint32_t tcmu_dev_get_block_size(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_block_size(dev: DevPtr) -> u32 {
    with_dev("tcmu_dev_get_block_size", dev, 0, |d| {
        d.block_size.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_block_size(struct tcmu_device *, uint32_t)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_block_size(dev: DevPtr, block_size: u32) {
    with_dev("tcmu_dev_set_block_size", dev, (), |d| {
        d.block_size.store(block_size, Ordering::Release)
    })
}

/// `uint64_t tcmu_dev_get_num_lbas(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_num_lbas(dev: DevPtr) -> u64 {
    with_dev("tcmu_dev_get_num_lbas", dev, 0, |d| {
        d.num_lbas.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_num_lbas(struct tcmu_device *, uint64_t)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_num_lbas(dev: DevPtr, num_lbas: u64) {
    with_dev("tcmu_dev_set_num_lbas", dev, (), |d| {
        d.num_lbas.store(num_lbas, Ordering::Release)
    })
}

/// `uint32_t tcmu_dev_get_max_xfer_len(struct tcmu_device *)`: in blocks.
#[no_mangle]
extern "C" fn tcmu_dev_get_max_xfer_len(dev: DevPtr) -> u32 {
    with_dev("tcmu_dev_get_max_xfer_len", dev, 0, |d| {
        d.params.max_xfer_blocks
    })
}

/// `void tcmu_dev_set_opt_xcopy_rw_len(struct tcmu_device *, uint32_t)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_opt_xcopy_rw_len(dev: DevPtr, len: u32) {
    with_dev("tcmu_dev_set_opt_xcopy_rw_len", dev, (), |d| {
        d.opt_xcopy_rw_len.store(len, Ordering::Release)
    })
}

/// `uint32_t tcmu_dev_get_max_unmap_len(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_max_unmap_len(dev: DevPtr) -> u32 {
    with_dev("tcmu_dev_get_max_unmap_len", dev, 0, |d| {
        d.max_unmap_len.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_max_unmap_len(struct tcmu_device *, uint32_t)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_max_unmap_len(dev: DevPtr, len: u32) {
    with_dev("tcmu_dev_set_max_unmap_len", dev, (), |d| {
        d.max_unmap_len.store(len, Ordering::Release)
    })
}

/// `uint32_t tcmu_dev_get_opt_unmap_gran(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_opt_unmap_gran(dev: DevPtr) -> u32 {
    with_dev("tcmu_dev_get_opt_unmap_gran", dev, 0, |d| {
        d.opt_unmap_gran.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_opt_unmap_gran(struct tcmu_device *, uint32_t len, bool split)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_opt_unmap_gran(dev: DevPtr, len: u32, split: bool) {
    with_dev("tcmu_dev_set_opt_unmap_gran", dev, (), |d| {
        d.opt_unmap_gran.store(len, Ordering::Release);
        d.unmap_split.store(split, Ordering::Release);
    })
}

/// `uint32_t tcmu_dev_get_unmap_gran_align(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_unmap_gran_align(dev: DevPtr) -> u32 {
    with_dev("tcmu_dev_get_unmap_gran_align", dev, 0, |d| {
        d.unmap_gran_align.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_unmap_gran_align(struct tcmu_device *, uint32_t)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_unmap_gran_align(dev: DevPtr, align: u32) {
    with_dev("tcmu_dev_set_unmap_gran_align", dev, (), |d| {
        d.unmap_gran_align.store(align, Ordering::Release)
    })
}

/// `bool tcmu_dev_get_write_cache_enabled(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_write_cache_enabled(dev: DevPtr) -> bool {
    with_dev("tcmu_dev_get_write_cache_enabled", dev, false, |d| {
        d.write_cache.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_write_cache_enabled(struct tcmu_device *, bool)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_write_cache_enabled(dev: DevPtr, enabled: bool) {
    with_dev("tcmu_dev_set_write_cache_enabled", dev, (), |d| {
        d.write_cache.store(enabled, Ordering::Release)
    })
}

/// `bool tcmu_dev_get_solid_state_media(struct tcmu_device *)`.
#[no_mangle]
extern "C" fn tcmu_dev_get_solid_state_media(dev: DevPtr) -> bool {
    with_dev("tcmu_dev_get_solid_state_media", dev, false, |d| {
        d.solid_state.load(Ordering::Acquire)
    })
}

/// `void tcmu_dev_set_solid_state_media(struct tcmu_device *, bool)`.
#[no_mangle]
extern "C" fn tcmu_dev_set_solid_state_media(dev: DevPtr, solid: bool) {
    with_dev("tcmu_dev_set_solid_state_media", dev, (), |d| {
        d.solid_state.store(solid, Ordering::Release)
    })
}

/// `bool tcmu_dev_get_unmap_enabled(struct tcmu_device *)`: true when the handler can unmap.
#[no_mangle]
extern "C" fn tcmu_dev_get_unmap_enabled(dev: DevPtr) -> bool {
    with_dev("tcmu_dev_get_unmap_enabled", dev, false, |d| d.params.unmap)
}

// ---------------------------------------------------------------------------------------------
// configfs stand-ins.

/// The C string at `name`, if it is one.
///
/// # Safety
/// `name` must be NULL or a NUL-terminated string.
unsafe fn c_str<'a>(name: *const c_char) -> Option<&'a str> {
    if name.is_null() {
        return None;
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(name) }.to_str().ok()
}

/// `uint64_t tcmu_cfgfs_dev_get_info_u64(dev, const char *name, int *fn_ret)`: only "Size"
/// (the device size in bytes) exists.
#[no_mangle]
extern "C" fn tcmu_cfgfs_dev_get_info_u64(
    dev: DevPtr,
    name: *const c_char,
    fn_ret: *mut c_int,
) -> u64 {
    let (value, ret) = with_dev(
        "tcmu_cfgfs_dev_get_info_u64",
        dev,
        (0, -libc::EINVAL),
        |d| {
            // SAFETY: handlers pass a NUL-terminated name.
            match unsafe { c_str(name) } {
                Some("Size") => (d.params.size, 0),
                _ => (0, -libc::ENOENT),
            }
        },
    );
    if !fn_ret.is_null() {
        // SAFETY: a non-NULL `fn_ret` points to the caller's int.
        unsafe { *fn_ret = ret };
    }
    value
}

/// `int tcmu_cfgfs_dev_get_attr_int(dev, const char *name)`: hw_block_size, hw_max_sectors,
/// emulate_write_cache; -ENOENT for others.
#[no_mangle]
extern "C" fn tcmu_cfgfs_dev_get_attr_int(dev: DevPtr, name: *const c_char) -> c_int {
    with_dev("tcmu_cfgfs_dev_get_attr_int", dev, -libc::EINVAL, |d| {
        // SAFETY: handlers pass a NUL-terminated name.
        let value = match unsafe { c_str(name) } {
            Some("hw_block_size") => d.block_size.load(Ordering::Acquire),
            Some("hw_max_sectors") => d.params.max_xfer_blocks,
            Some("emulate_write_cache") => u32::from(d.write_cache.load(Ordering::Acquire)),
            _ => return -libc::ENOENT,
        };
        c_int::try_from(value).unwrap_or(c_int::MAX)
    })
}

/// `char *tcmu_cfgfs_dev_get_wwn(dev)`: the unit serial in memory from malloc (the handler
/// frees it).
#[no_mangle]
extern "C" fn tcmu_cfgfs_dev_get_wwn(dev: DevPtr) -> *mut c_char {
    with_dev("tcmu_cfgfs_dev_get_wwn", dev, std::ptr::null_mut(), |d| {
        // SAFETY: the serial is a valid NUL-terminated string; strdup allocates with malloc.
        unsafe { libc::strdup(d.serial().as_ptr()) }
    })
}

// ---------------------------------------------------------------------------------------------
// CDB helpers.

/// The length of a CDB from its group code, if known.
pub fn cdb_length(opcode: u8) -> Option<usize> {
    match opcode >> 5 {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// `tcmu_cdb_get_lba` on a CDB slice of at least the group length.
pub fn cdb_lba(cdb: &[u8]) -> u64 {
    let be = |range: std::ops::Range<usize>| {
        cdb.get(range).map_or(0, |b| {
            b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
        })
    };
    match cdb.first().copied().and_then(cdb_length) {
        Some(6) => (u64::from(cdb.get(1).copied().unwrap_or(0) & 0x1f) << 16) | be(2..4),
        Some(10) | Some(12) => be(2..6),
        Some(16) => be(2..10),
        _ => 0,
    }
}

/// `tcmu_cdb_get_xfer_length` on a CDB slice of at least the group length.
pub fn cdb_xfer_length(cdb: &[u8]) -> u32 {
    let be = |range: std::ops::Range<usize>| {
        cdb.get(range).map_or(0, |b| {
            b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
        })
    };
    match cdb.first().copied().and_then(cdb_length) {
        Some(6) => u32::from(cdb.get(4).copied().unwrap_or(0)),
        Some(10) => be(7..9),
        Some(12) => be(6..10),
        Some(16) => be(10..14),
        _ => 0,
    }
}

/// The CDB at `cdb` as a slice of its group length (16 bytes when unknown).
///
/// # Safety
/// `cdb` must be NULL or point to a CDB at least as long as its group length.
unsafe fn cdb_slice<'a>(cdb: *const u8) -> &'a [u8] {
    if cdb.is_null() {
        return &[];
    }
    // SAFETY: the first byte exists; the rest per the contract.
    let len = cdb_length(unsafe { *cdb }).unwrap_or(1);
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts(cdb, len) }
}

/// `uint64_t tcmu_cdb_get_lba(uint8_t *cdb)`.
#[no_mangle]
extern "C" fn tcmu_cdb_get_lba(cdb: *mut u8) -> u64 {
    // SAFETY: handlers pass the command's CDB.
    guard("tcmu_cdb_get_lba", 0, || cdb_lba(unsafe { cdb_slice(cdb) }))
}

/// `uint32_t tcmu_cdb_get_xfer_length(uint8_t *cdb)`.
#[no_mangle]
extern "C" fn tcmu_cdb_get_xfer_length(cdb: *mut u8) -> u32 {
    // SAFETY: handlers pass the command's CDB.
    guard("tcmu_cdb_get_xfer_length", 0, || {
        cdb_xfer_length(unsafe { cdb_slice(cdb) })
    })
}

// ---------------------------------------------------------------------------------------------
// iovec helpers (they consume the caller's array, as upstream's do).

/// Sum of the lengths.
pub fn iovec_length(iov: &[iovec]) -> usize {
    iov.iter().map(|v| v.iov_len).sum()
}

/// Copies from `src` into the iovec buffers, consuming them; returns the bytes copied.
///
/// # Safety
/// Every entry must describe writable memory of its length, not overlapping `src`.
pub unsafe fn memcpy_into_iovec(iov: &mut [iovec], src: &[u8]) -> usize {
    let mut copied = 0;
    for v in iov.iter_mut() {
        let n = v.iov_len.min(src.len() - copied);
        if n > 0 {
            // SAFETY: per the contract, the entry holds `iov_len >= n` writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(src[copied..].as_ptr(), v.iov_base.cast(), n) };
            copied += n;
            v.iov_base = v.iov_base.cast::<u8>().wrapping_add(n).cast();
            v.iov_len -= n;
        }
        if copied == src.len() {
            break;
        }
    }
    copied
}

/// Copies from the iovec buffers into `dst`, consuming them; returns the bytes copied.
///
/// # Safety
/// Every entry must describe readable memory of its length, not overlapping `dst`.
pub unsafe fn memcpy_from_iovec(dst: &mut [u8], iov: &mut [iovec]) -> usize {
    let mut copied = 0;
    for v in iov.iter_mut() {
        let n = v.iov_len.min(dst.len() - copied);
        if n > 0 {
            // SAFETY: per the contract, the entry holds `iov_len >= n` readable bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(v.iov_base.cast(), dst[copied..].as_mut_ptr(), n)
            };
            copied += n;
            v.iov_base = v.iov_base.cast::<u8>().wrapping_add(n).cast();
            v.iov_len -= n;
        }
        if copied == dst.len() {
            break;
        }
    }
    copied
}

/// `size_t tcmu_iovec_length(struct iovec *, size_t cnt)`.
#[no_mangle]
extern "C" fn tcmu_iovec_length(iov: *mut iovec, cnt: size_t) -> size_t {
    // SAFETY: handlers pass their command's iovec array and its length.
    guard("tcmu_iovec_length", 0, || {
        iovec_length(unsafe { iov_slice(iov, cnt) })
    })
}

/// `size_t tcmu_iovec_seek(struct iovec *, size_t count)`. The array length is not passed;
/// entries are walked only while bytes remain, as upstream does.
#[no_mangle]
extern "C" fn tcmu_iovec_seek(iov: *mut iovec, count: size_t) -> size_t {
    guard("tcmu_iovec_seek", 0, || {
        if iov.is_null() {
            return 0;
        }
        let (mut left, mut consumed, mut at) = (count, 0, iov);
        while left > 0 {
            // SAFETY: the caller guarantees `count` bytes exist in the array from `iov`, so
            // every entry visited while bytes remain is inside it.
            let v = unsafe { &mut *at };
            if left >= v.iov_len {
                left -= v.iov_len;
                v.iov_len = 0;
                consumed += 1;
                at = at.wrapping_add(1);
            } else {
                v.iov_base = v.iov_base.cast::<u8>().wrapping_add(left).cast();
                v.iov_len -= left;
                left = 0;
            }
        }
        consumed
    })
}

/// `size_t tcmu_memcpy_into_iovec(struct iovec *, size_t cnt, void *src, size_t len)`.
#[no_mangle]
extern "C" fn tcmu_memcpy_into_iovec(
    iov: *mut iovec,
    cnt: size_t,
    src: *mut c_void,
    len: size_t,
) -> size_t {
    guard("tcmu_memcpy_into_iovec", 0, || {
        if src.is_null() || len == 0 {
            return 0;
        }
        // SAFETY: handlers pass `len` readable bytes at `src` and a valid iovec array whose
        // buffers are writable and distinct from `src`.
        unsafe {
            let src = std::slice::from_raw_parts(src.cast::<u8>(), len);
            memcpy_into_iovec(iov_slice(iov, cnt), src)
        }
    })
}

/// `size_t tcmu_memcpy_from_iovec(void *dst, size_t len, struct iovec *, size_t cnt)`.
#[no_mangle]
extern "C" fn tcmu_memcpy_from_iovec(
    dst: *mut c_void,
    len: size_t,
    iov: *mut iovec,
    cnt: size_t,
) -> size_t {
    guard("tcmu_memcpy_from_iovec", 0, || {
        if dst.is_null() || len == 0 {
            return 0;
        }
        // SAFETY: handlers pass `len` writable bytes at `dst` and a valid iovec array whose
        // buffers are readable and distinct from `dst`.
        unsafe {
            let dst = std::slice::from_raw_parts_mut(dst.cast::<u8>(), len);
            memcpy_from_iovec(dst, iov_slice(iov, cnt))
        }
    })
}

/// `off_t tcmu_iovec_compare(void *mem, struct iovec *, size_t size)`: the offset of the first
/// difference in the first `size` bytes, or -1. Does not consume the array.
#[no_mangle]
extern "C" fn tcmu_iovec_compare(mem: *mut c_void, iov: *mut iovec, size: size_t) -> off_t {
    guard("tcmu_iovec_compare", -1, || {
        if mem.is_null() || iov.is_null() {
            return -1;
        }
        // SAFETY: handlers pass `size` readable bytes at `mem`.
        let mem = unsafe { std::slice::from_raw_parts(mem.cast::<u8>(), size) };
        let (mut off, mut at) = (0usize, iov);
        while off < size {
            // SAFETY: the caller guarantees the array holds `size` bytes from `iov`.
            let v = unsafe { &*at };
            let n = v.iov_len.min(size - off);
            // SAFETY: the entry holds `iov_len >= n` readable bytes.
            let part = unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), n) };
            if let Some(i) = part
                .iter()
                .zip(&mem[off..off + n])
                .position(|(a, b)| a != b)
            {
                return off_t::try_from(off + i).unwrap_or(off_t::MAX);
            }
            off += n;
            at = at.wrapping_add(1);
        }
        -1
    })
}

// ---------------------------------------------------------------------------------------------
// Sense helpers (on the 96-byte sense buffer).

/// The 96-byte sense buffer at `sense`.
///
/// # Safety
/// `sense` must be NULL or point to a command's sense buffer.
unsafe fn sense_slice<'a>(sense: *mut u8) -> &'a mut [u8] {
    if sense.is_null() {
        return &mut [];
    }
    // SAFETY: per the contract, the buffer is SENSE_BUFFERSIZE bytes.
    unsafe { std::slice::from_raw_parts_mut(sense, crate::abi::SENSE_BUFFERSIZE) }
}

/// `int tcmu_sense_set_data(uint8_t *sense, uint8_t key, uint16_t asc_ascq)`: returns
/// PASSTHROUGH_ERR.
#[no_mangle]
extern "C" fn tcmu_sense_set_data(sense: *mut u8, key: u8, asc_ascq: u16) -> c_int {
    guard("tcmu_sense_set_data", sts::PASSTHROUGH_ERR, || {
        // SAFETY: handlers pass their command's sense buffer.
        crate::status::set_data(unsafe { sense_slice(sense) }, key, asc_ascq)
    })
}

/// `void tcmu_sense_set_info(uint8_t *sense, uint32_t info)`.
#[no_mangle]
extern "C" fn tcmu_sense_set_info(sense: *mut u8, info: u32) {
    guard("tcmu_sense_set_info", (), || {
        // SAFETY: handlers pass their command's sense buffer.
        crate::status::set_info(unsafe { sense_slice(sense) }, info)
    })
}

/// `void tcmu_sense_set_key_specific_info(uint8_t *sense, uint16_t info)`.
#[no_mangle]
extern "C" fn tcmu_sense_set_key_specific_info(sense: *mut u8, info: u16) {
    guard("tcmu_sense_set_key_specific_info", (), || {
        // SAFETY: handlers pass their command's sense buffer.
        crate::status::set_key_specific(unsafe { sense_slice(sense) }, info)
    })
}

// ---------------------------------------------------------------------------------------------
// Threads, events, completion.

/// `void tcmu_set_thread_name(const char *prefix, struct tcmu_device *)`: names the calling
/// thread (at most 15 bytes).
#[no_mangle]
extern "C" fn tcmu_set_thread_name(prefix: *const c_char, _dev: DevPtr) {
    guard("tcmu_set_thread_name", (), || {
        // SAFETY: handlers pass a NUL-terminated prefix.
        let Some(text) = (unsafe { c_str(prefix) }) else {
            return;
        };
        let mut name: Vec<u8> = text.bytes().filter(|&b| b != 0).take(15).collect();
        name.push(0);
        // SAFETY: `name` is NUL-terminated and at most 16 bytes; pthread_self is this thread.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr().cast()) };
    })
}

/// `void tcmu_notify_lock_lost(struct tcmu_device *)`: counted in the runner block, logged.
#[no_mangle]
extern "C" fn tcmu_notify_lock_lost(dev: DevPtr) {
    with_dev("tcmu_notify_lock_lost", dev, (), |d| {
        let r = d.runner();
        // The daemon ignores the notification while it is acquiring the lock (WRITE_LOCKING).
        if r.lock_state.load(Ordering::Acquire) != 4 {
            r.lock_lost.store(true, Ordering::Release);
            r.lock_state.store(LOCK_STATE_UNLOCKED, Ordering::Release);
            r.lock_lost_cnt.fetch_add(1, Ordering::AcqRel);
        }
        log::warn!("tcmu {}: the handler lost its lock", d.name());
    })
}

/// `void tcmu_notify_cmd_timed_out(struct tcmu_device *)`: counted, logged.
#[no_mangle]
extern "C" fn tcmu_notify_cmd_timed_out(dev: DevPtr) {
    with_dev("tcmu_notify_cmd_timed_out", dev, (), |d| {
        let r = d.runner();
        r.cmd_timed_out_cnt.fetch_add(1, Ordering::AcqRel);
        r.conn_lost_cnt.fetch_add(1, Ordering::AcqRel);
        log::warn!("tcmu {}: a command timed out in the handler", d.name());
    })
}

/// `void tcmur_cmd_complete(struct tcmu_device *, void *cmd, int sts)`: an asynchronous
/// handler finished a command (on any thread, possibly before its callout returned).
#[no_mangle]
extern "C" fn tcmur_cmd_complete(dev: DevPtr, cmd: *mut c_void, status: c_int) {
    with_dev("tcmur_cmd_complete", dev, (), |d| {
        crate::exec::complete_from_handler(d, cmd, status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iov(buf: &mut [u8]) -> iovec {
        iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        }
    }

    #[test]
    fn cdb_fields() {
        let read6 = [0x08, 0x1f, 0xff, 0xfe, 0, 0];
        assert_eq!(cdb_lba(&read6), 0x1f_fffe);
        assert_eq!(cdb_xfer_length(&read6), 0);
        let read10 = [0x28, 0, 0, 0, 1, 2, 0, 0, 8, 0];
        assert_eq!((cdb_lba(&read10), cdb_xfer_length(&read10)), (0x102, 8));
        let mut read16 = [0u8; 16];
        read16[0] = 0x88;
        read16[2..10].copy_from_slice(&0x1_0000_0001u64.to_be_bytes());
        read16[10..14].copy_from_slice(&300u32.to_be_bytes());
        assert_eq!(
            (cdb_lba(&read16), cdb_xfer_length(&read16)),
            (0x1_0000_0001, 300)
        );
        let mut read12 = [0u8; 12];
        read12[0] = 0xA8;
        read12[5] = 7;
        read12[9] = 9;
        assert_eq!((cdb_lba(&read12), cdb_xfer_length(&read12)), (7, 9));
        assert_eq!(cdb_lba(&[0x7f]), 0, "variable length: unknown");
        assert_eq!(tcmu_cdb_get_lba(read10.as_ptr().cast_mut()), 0x102);
        assert_eq!(tcmu_cdb_get_xfer_length(std::ptr::null_mut()), 0);
    }

    #[test]
    fn seek_consumes_entries() {
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        let mut v = [iov(&mut a), iov(&mut b)];
        assert_eq!(tcmu_iovec_length(v.as_mut_ptr(), 2), 16);
        assert_eq!(tcmu_iovec_seek(v.as_mut_ptr(), 10), 1);
        assert_eq!((v[0].iov_len, v[1].iov_len), (0, 6));
        assert_eq!(v[1].iov_base, b[2..].as_mut_ptr().cast());
    }

    #[test]
    fn memcpy_round_trip_across_entries() {
        let (mut a, mut b) = ([0u8; 3], [0u8; 5]);
        let mut v = [iov(&mut a), iov(&mut b)];
        let src = [1u8, 2, 3, 4, 5, 6, 7];
        let n = tcmu_memcpy_into_iovec(v.as_mut_ptr(), 2, src.as_ptr().cast_mut().cast(), 7);
        assert_eq!(n, 7);
        assert_eq!((v[0].iov_len, v[1].iov_len), (0, 1), "consumed");
        assert_eq!(a, [1, 2, 3]);
        assert_eq!(b, [4, 5, 6, 7, 0]);
        let mut v = [iov(&mut a), iov(&mut b)];
        let mut dst = [0u8; 10];
        let n = tcmu_memcpy_from_iovec(dst.as_mut_ptr().cast(), 10, v.as_mut_ptr(), 2);
        assert_eq!(n, 8, "truncated at the iovec's end");
        assert_eq!(&dst[..8], &[1, 2, 3, 4, 5, 6, 7, 0]);
    }

    #[test]
    fn compare_finds_first_difference() {
        let (mut a, mut b) = ([1u8, 2], [3u8, 4, 5]);
        let mut v = [iov(&mut a), iov(&mut b)];
        let same = [1u8, 2, 3, 4, 5];
        assert_eq!(
            tcmu_iovec_compare(same.as_ptr().cast_mut().cast(), v.as_mut_ptr(), 5),
            -1
        );
        let diff = [1u8, 2, 3, 9, 5];
        assert_eq!(
            tcmu_iovec_compare(diff.as_ptr().cast_mut().cast(), v.as_mut_ptr(), 5),
            3
        );
        assert_eq!(v[0].iov_len, 2, "not consumed");
    }

    #[test]
    fn sense_helpers() {
        let mut s = [0xEEu8; 96];
        assert_eq!(
            tcmu_sense_set_data(s.as_mut_ptr(), 5, 0x2400),
            sts::PASSTHROUGH_ERR
        );
        assert_eq!(
            (s[0], s[2], s[7], s[12], s[13], s[95]),
            (0x70, 5, 10, 0x24, 0, 0)
        );
        tcmu_sense_set_info(s.as_mut_ptr(), 7);
        assert_eq!((s[0], s[6]), (0x80, 7));
        tcmu_sense_set_key_specific_info(s.as_mut_ptr(), 0x0102);
        assert_eq!(&s[15..18], &[0x80, 1, 2]);
    }

    #[test]
    fn foreign_device_pointers_are_harmless() {
        assert_eq!(tcmu_dev_get_block_size(std::ptr::null_mut()), 0);
        assert!(tcmu_dev_get_cfgstring(std::ptr::null_mut()).is_null());
        let mut ret = 0;
        let name = c"Size";
        assert_eq!(
            tcmu_cfgfs_dev_get_info_u64(std::ptr::null_mut(), name.as_ptr(), &mut ret),
            0
        );
        assert_eq!(ret, -libc::EINVAL);
    }
}
