//! The host's `struct tcmu_device`: the per-device state handlers reach only through the
//! exported accessor functions (`host.rs`), plus the fake runner-device block that
//! `tcmu_dev_get_private()` returns (read directly by handler_rbd.so).
//!
//! Every field a handler may set or read is an atomic or immutable, so the accessors are
//! thread-safe: handlers call them from their own threads (librbd callbacks, fbo's format
//! thread).

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_void, CString};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use crate::abi::{DevPtr, RunnerDevice};
use crate::exec::Msg;

/// Distinguishes a live [`HostDevice`] from anything else a handler might pass back.
const DEVICE_MAGIC: u64 = 0x7573_7467_7463_6d75;

/// The size of the configuration string buffer (the daemon's PATH_MAX buffer).
const CFGSTRING_CAPACITY: usize = 4096;

/// A NUL-terminated string in memory from the C library's allocator, writable by handlers
/// and stable for the device's life.
struct CBuf(NonNull<c_char>);

impl CBuf {
    /// Copies `text` into a zeroed buffer of at least [`CFGSTRING_CAPACITY`] bytes.
    fn new(text: &CString) -> Option<CBuf> {
        let bytes = text.as_bytes_with_nul();
        let cap = bytes.len().max(CFGSTRING_CAPACITY);
        // SAFETY: calloc has no preconditions; the result is checked for NULL below.
        let raw = unsafe { libc::calloc(cap, 1) }.cast::<c_char>();
        let ptr = NonNull::new(raw)?;
        // SAFETY: the buffer holds `cap >= bytes.len()` bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), ptr.as_ptr(), bytes.len()) };
        Some(CBuf(ptr))
    }
}

impl Drop for CBuf {
    fn drop(&mut self) {
        // SAFETY: the pointer came from calloc and is freed exactly once, here.
        unsafe { libc::free(self.0.as_ptr().cast()) };
    }
}

/// What a device is created with.
#[derive(Debug, Clone)]
pub(crate) struct DeviceParams {
    /// `SUBTYPE/CONFIG`, as the handler receives it.
    pub cfgstring: String,
    /// The device size in bytes ("Size" in the configfs info file).
    pub size: u64,
    /// Logical block size before the handler opens the device.
    pub block_size: u32,
    /// Largest transfer in blocks (hw_max_sectors).
    pub max_xfer_blocks: u32,
    /// Unit serial number (what `tcmu_cfgfs_dev_get_wwn` returns).
    pub serial: String,
    /// The handler has an unmap callout.
    pub unmap: bool,
    /// The handler is synchronous (nr_threads > 0): callouts return the final status.
    pub synchronous: bool,
}

/// The host's per-device state; its address is the `struct tcmu_device *` handlers see.
pub(crate) struct HostDevice {
    magic: u64,
    pub params: DeviceParams,
    cfgstring: CBuf,
    serial: CString,
    /// The daemon's `struct tcmur_device` stand-in (see [`RunnerDevice`]).
    runner: Box<UnsafeCell<RunnerDevice>>,
    hm_private: AtomicPtr<c_void>,
    pub block_size: AtomicU32,
    pub num_lbas: AtomicU64,
    pub max_unmap_len: AtomicU32,
    pub opt_unmap_gran: AtomicU32,
    pub unmap_split: AtomicBool,
    pub unmap_gran_align: AtomicU32,
    pub opt_xcopy_rw_len: AtomicU32,
    pub write_cache: AtomicBool,
    pub solid_state: AtomicBool,
    /// Commands handed to an asynchronous handler whose completion has not arrived.
    pub in_flight: AtomicUsize,
    /// The device's worker, for commands that continue after a completion (FUA flushes).
    pub worker: Mutex<Option<Sender<Msg>>>,
}

// SAFETY: every field handlers or threads change is an atomic or behind a mutex; the runner
// block is only read by handlers and written through its atomic fields; the configuration
// buffer is written only by handlers, as in the daemon.
unsafe impl Sync for HostDevice {}
// SAFETY: as above; the raw buffers are owned by the device and freed in its Drop.
unsafe impl Send for HostDevice {}

impl HostDevice {
    /// A device in its state before `open`: the given geometry, write cache off, unmap limits
    /// at the daemon's defaults. `None` when the strings contain NUL or memory is short.
    pub fn new(params: DeviceParams) -> Option<HostDevice> {
        let cfg = CString::new(params.cfgstring.clone()).ok()?;
        let serial = CString::new(params.serial.clone()).ok()?;
        let bs = params.block_size.max(1);
        Some(HostDevice {
            magic: DEVICE_MAGIC,
            cfgstring: CBuf::new(&cfg)?,
            serial,
            runner: Box::new(UnsafeCell::new(RunnerDevice::new())),
            hm_private: AtomicPtr::new(std::ptr::null_mut()),
            block_size: AtomicU32::new(bs),
            num_lbas: AtomicU64::new(params.size / u64::from(bs)),
            max_unmap_len: AtomicU32::new(32 << 20),
            opt_unmap_gran: AtomicU32::new(params.max_xfer_blocks),
            unmap_split: AtomicBool::new(true),
            unmap_gran_align: AtomicU32::new(0),
            opt_xcopy_rw_len: AtomicU32::new(params.max_xfer_blocks),
            write_cache: AtomicBool::new(false),
            solid_state: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            worker: Mutex::new(None),
            params,
        })
    }

    /// The opaque pointer handlers receive.
    pub fn as_ptr(&self) -> DevPtr {
        (self as *const HostDevice).cast_mut().cast()
    }

    /// The device behind a pointer a handler passed back, if it is one of ours.
    ///
    /// # Safety
    /// `ptr` must be NULL or a pointer obtained from [`HostDevice::as_ptr`] of a device that is
    /// still alive (the host keeps every device alive while its handler may call back).
    pub unsafe fn from_ptr<'a>(ptr: DevPtr) -> Option<&'a HostDevice> {
        let dev = ptr.cast::<HostDevice>().cast_const();
        if dev.is_null() {
            return None;
        }
        // SAFETY: per the contract, a non-NULL pointer is a live HostDevice.
        let dev = unsafe { &*dev };
        (dev.magic == DEVICE_MAGIC).then_some(dev)
    }

    /// The configuration string buffer (`tcmu_dev_get_cfgstring`).
    pub fn cfgstring_ptr(&self) -> *mut c_char {
        self.cfgstring.0.as_ptr()
    }

    /// The unit serial number (`tcmu_cfgfs_dev_get_wwn`).
    pub fn serial(&self) -> &CString {
        &self.serial
    }

    /// The runner-device block (`tcmu_dev_get_private`).
    pub fn runner_ptr(&self) -> *mut c_void {
        self.runner.get().cast()
    }

    /// The runner block, for the notify functions (atomic fields only are written).
    pub fn runner(&self) -> &RunnerDevice {
        // SAFETY: handlers only read the block; the host changes only its atomic fields.
        unsafe { &*self.runner.get() }
    }

    /// The handler's per-device pointer (`tcmur_dev_get_private`).
    pub fn private(&self) -> *mut c_void {
        self.hm_private.load(Ordering::Acquire)
    }

    /// Sets the handler's per-device pointer (`tcmur_dev_set_private`).
    pub fn set_private(&self, p: *mut c_void) {
        self.hm_private.store(p, Ordering::Release);
    }

    /// A name for log lines: `SUBTYPE/CONFIG`.
    pub fn name(&self) -> &str {
        &self.params.cfgstring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> DeviceParams {
        DeviceParams {
            cfgstring: "qcow//tmp/x.qcow2".into(),
            size: 1 << 20,
            block_size: 512,
            max_xfer_blocks: 2048,
            serial: "abc".into(),
            unmap: false,
            synchronous: true,
        }
    }

    #[test]
    fn device_pointer_round_trips() {
        let dev = HostDevice::new(params()).expect("device");
        let ptr = dev.as_ptr();
        // SAFETY: `dev` is alive.
        let back = unsafe { HostDevice::from_ptr(ptr) }.expect("ours");
        assert!(std::ptr::eq(back, &dev));
        // SAFETY: NULL is allowed.
        assert!(unsafe { HostDevice::from_ptr(std::ptr::null_mut()) }.is_none());
        assert_eq!(dev.num_lbas.load(Ordering::Relaxed), 2048);
    }

    #[test]
    fn cfgstring_is_nul_terminated_and_large() {
        let dev = HostDevice::new(params()).expect("device");
        // SAFETY: the buffer is NUL-terminated and lives as long as `dev`.
        let text = unsafe { std::ffi::CStr::from_ptr(dev.cfgstring_ptr()) };
        assert_eq!(text.to_str().expect("utf8"), "qcow//tmp/x.qcow2");
        let mut p = params();
        p.cfgstring = "qcow/a\0b".into();
        assert!(HostDevice::new(p).is_none(), "NUL in the configuration");
    }

    #[test]
    fn private_pointers_are_separate() {
        let dev = HostDevice::new(params()).expect("device");
        let mut x = 5u8;
        dev.set_private((&mut x as *mut u8).cast());
        assert_eq!(dev.private(), (&mut x as *mut u8).cast());
        assert_ne!(dev.runner_ptr(), dev.private());
        assert_eq!(dev.runner().lock_state.load(Ordering::Relaxed), 0);
    }
}
