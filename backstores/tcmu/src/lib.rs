//! A ustgt block store that runs unmodified tcmu-runner 1.5.4 handler plugins in-process:
//! `handler_qcow.so` (QEMU qcow/qcow2 images), `handler_rbd.so` (Ceph RBD), and the zoned
//! and optical file handlers, which emulate SCSI themselves ([`TcmuScsiDevice`]).
//!
//! The plugins are the `.so` files of Debian's `tcmu-runner` package. They expect to be loaded
//! into the tcmu-runner daemon, whose executable and libtcmu provide 43 functions they import;
//! this crate provides the same functions (`host.rs`, plus the variadic logging functions in
//! `csrc/shim.c`), which the executable must export: link it with
//! `-Wl,--dynamic-list=<this crate>/exports.dynlist` (the path is in
//! `DEP_USTGT_TCMU_HOST_DYNAMIC_LIST` for build scripts of crates that depend on this one).
//!
//! A store is opened from a configuration string `SUBTYPE/CONFIG`, exactly what tcmu-runner's
//! handlers receive (`qcow//var/lib/images/vm.qcow2`): `handler_SUBTYPE.so` is loaded from the
//! handler directory once per process, the device is opened with the size the handler needs
//! (for qcow: the image's virtual size, read from its header, in 512-byte blocks; for rbd:
//! the RBD image's size, asked from the cluster through librbd, `rbd.rs`), and every
//! block operation runs on one worker thread per device (`exec.rs`). Event loops queue
//! READ/WRITE/SYNCHRONIZE CACHE through [`TcmuQueue`] and are woken by an eventfd, so they
//! never wait for a handler.
//!
//! Handlers that implement only `handle_cmd` (zbc, optical) emulate SCSI themselves: they are
//! not block stores but [`TcmuScsiDevice`]s, which take every CDB to the handler on the same
//! kind of worker thread and return its status, data and sense (`passthrough.rs`).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod abi;
#[allow(unsafe_code)]
mod device;
#[allow(unsafe_code)]
mod exec;
#[allow(unsafe_code)]
mod host;
pub mod image;
#[allow(unsafe_code)]
pub mod loader;
#[allow(unsafe_code)]
mod logsink;
#[allow(unsafe_code)]
mod passthrough;
#[allow(unsafe_code)]
mod queue;
#[allow(unsafe_code)]
pub mod rbd;
mod scsi_device;
pub mod status;

use std::ffi::CString;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backstore::{BlockStore, Capabilities, Geometry, IoQueue};

use crate::device::{DeviceParams, HostDevice};
use crate::exec::{Job, Msg, Op, Reply};
use crate::loader::Handler;
use crate::logsink::Capture;

pub use crate::loader::DEFAULT_HANDLER_DIR;
pub use crate::passthrough::CdbResult;
pub use crate::queue::TcmuQueue;
pub use crate::scsi_device::{emulates_scsi, TcmuScsiDevice};

/// Default number of operations one event loop keeps queued on a device.
pub const DEFAULT_QUEUE_DEPTH: u32 = 128;

/// How long closing a device waits for an asynchronous handler's outstanding completions.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// How to open a [`TcmuStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcmuOptions {
    /// Where the `handler_*.so` plugins are.
    pub handler_dir: PathBuf,
    /// `SUBTYPE/CONFIG`, as the handler receives it (e.g. `qcow//srv/vm.qcow2`).
    pub cfgstring: String,
    /// Device size in bytes; `None` reads it from the image (qcow, rbd).
    pub size: Option<u64>,
    /// Logical block size (512 or 4096; qcow works in 512-byte blocks).
    pub block_size: u32,
    /// Refuse writes with EROFS.
    pub read_only: bool,
    /// Unit serial number handlers may ask for (`tcmu_cfgfs_dev_get_wwn`).
    pub serial: String,
    /// Operations queued per event loop.
    pub queue_depth: u32,
}

impl TcmuOptions {
    /// Options for `cfgstring` with the defaults: Debian's handler directory, size from the
    /// image, 512-byte blocks, writable.
    pub fn new(cfgstring: &str) -> TcmuOptions {
        TcmuOptions {
            handler_dir: PathBuf::from(DEFAULT_HANDLER_DIR),
            cfgstring: cfgstring.to_string(),
            size: None,
            block_size: 512,
            read_only: false,
            serial: "ustgt-tcmu".into(),
            queue_depth: DEFAULT_QUEUE_DEPTH,
        }
    }
}

/// Splits `SUBTYPE/CONFIG` into its parts.
pub fn split_cfgstring(cfgstring: &str) -> Result<(&str, &str), String> {
    match cfgstring.split_once('/') {
        Some((sub, cfg)) if !sub.is_empty() && !cfg.is_empty() => Ok((sub, cfg)),
        _ => Err(format!(
            "invalid handler configuration \"{cfgstring}\" (expected SUBTYPE/CONFIG, e.g. \
             qcow//var/lib/images/vm.qcow2)"
        )),
    }
}

/// A block store served by a tcmu-runner handler plugin.
pub struct TcmuStore {
    dev: Arc<HostDevice>,
    handler: Arc<Handler>,
    tx: Sender<Msg>,
    worker: Option<JoinHandle<()>>,
    geometry: Geometry,
    caps: Capabilities,
    queue_depth: usize,
    /// What the handler discards: whole granules of this many bytes starting at
    /// `discard_align` (modulo the granule); see [`Granules`].
    discard: Granules,
}

/// The unmap granularity a handler announced in `open` (`tcmu_dev_set_opt_unmap_gran` and
/// `tcmu_dev_set_unmap_gran_align`, in blocks). handler_rbd.so announces librbd's
/// `rbd_discard_granularity_bytes` (64 KiB by default), below which librbd skips a discard
/// and the data stays: a trim unmaps only the whole granules of its range and writes zeroes
/// over the rest, so that the range reads as zeroes afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Granules {
    size: u64,
    align: u64,
}

impl Granules {
    /// The granules left on `dev` by the handler's open; one block when it set none.
    fn of(dev: &HostDevice, bs: u64) -> Granules {
        let gran = dev.opt_unmap_gran.load(Ordering::Acquire);
        if gran <= 1 || gran == dev.params.max_xfer_blocks {
            return Granules { size: bs, align: 0 };
        }
        let size = u64::from(gran) * bs;
        let align = u64::from(dev.unmap_gran_align.load(Ordering::Acquire)) * bs % size;
        Granules { size, align }
    }

    /// How far `x` is past the start of its granule.
    fn past(&self, x: u64) -> u64 {
        (x % self.size + self.size - self.align) % self.size
    }

    /// The whole granules inside `offset..offset + len`, as (start, end), if any.
    fn inside(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        let end = offset.checked_add(len)?;
        let first = match self.past(offset) {
            0 => offset,
            p => offset.checked_add(self.size - p)?,
        };
        let last = end - self.past(end);
        (first < last).then_some((first, last))
    }
}

impl std::fmt::Debug for TcmuStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcmuStore")
            .field("cfgstring", &self.dev.name())
            .field("handler", &self.handler.path)
            .field("geometry", &self.geometry)
            .finish()
    }
}

fn einval() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// Asks the handler's `check_config`, if it has one.
fn check_config(handler: &Handler, cfgstring: &str) -> Result<(), String> {
    let Some(check) = handler.table().check_config else {
        return Ok(());
    };
    let cfg = CString::new(cfgstring).map_err(|_| "the configuration contains a NUL byte")?;
    let mut reason: *mut std::ffi::c_char = std::ptr::null_mut();
    #[allow(unsafe_code)]
    // SAFETY: the handler's `check_config(const char *, char **reason)` with a NUL-terminated
    // string and a place for a malloc'd reason, which is copied and freed with free().
    let (ok, why) = unsafe {
        let ok = check(cfg.as_ptr(), &mut reason);
        let why = if reason.is_null() {
            None
        } else {
            let text = std::ffi::CStr::from_ptr(reason)
                .to_string_lossy()
                .into_owned();
            libc::free(reason.cast());
            Some(text)
        };
        (ok, why)
    };
    if ok {
        return Ok(());
    }
    Err(format!(
        "{} refused the configuration \"{cfgstring}\": {}",
        handler.file_name(),
        why.unwrap_or_else(|| "no reason given".into())
    ))
}

/// The size to tell the handler.
fn device_size(opts: &TcmuOptions, subtype: &str, config: &str) -> Result<u64, String> {
    let size = match (opts.size, subtype) {
        (Some(size), _) => size,
        (None, "qcow") => image::qcow_handler_size(std::path::Path::new(config))
            .map_err(|e| format!("{config}: {e}"))?,
        (None, "rbd") => rbd::image_size(&rbd::parse_config(config)?)?,
        (None, "fbo") => scsi_device::fbo_file_size(config)?,
        (None, _) => {
            return Err(format!(
                "give size= for the {subtype} handler (it cannot report the size itself)"
            ))
        }
    };
    let bs = u64::from(opts.block_size);
    if size == 0 || size % bs != 0 {
        return Err(format!(
            "the size {size} is not a non-zero multiple of the block size {bs}"
        ));
    }
    Ok(size)
}

/// Calls the handler's `open`; on failure clears its private pointer (handlers leave it
/// dangling) and returns the reason the handler logged.
fn open_device(handler: &Handler, dev: &HostDevice) -> Result<(), String> {
    let Some(open) = handler.table().open else {
        return Ok(());
    };
    let capture = Capture::start();
    #[allow(unsafe_code)]
    // SAFETY: the handler's open with the host's live device, as the daemon calls it.
    let rc = unsafe { open(dev.as_ptr(), false) };
    let reason = capture.finish();
    if rc == 0 {
        return Ok(());
    }
    dev.set_private(std::ptr::null_mut());
    let code = if rc < -1 {
        format!("{}", io::Error::from_raw_os_error(-rc))
    } else {
        format!("error {rc}")
    };
    Err(format!(
        "{} could not open \"{}\": {}",
        handler.file_name(),
        dev.name(),
        reason.unwrap_or(code)
    ))
}

/// Checks the configuration, creates the host device and calls the handler's `open`.
fn open_host(handler: &Handler, opts: &TcmuOptions) -> Result<Arc<HostDevice>, String> {
    let (subtype, config) = split_cfgstring(&opts.cfgstring)?;
    check_config(handler, &opts.cfgstring)?;
    let size = device_size(opts, subtype, config)?;
    let params = DeviceParams {
        cfgstring: opts.cfgstring.clone(),
        size,
        block_size: opts.block_size,
        max_xfer_blocks: (8 << 20) / opts.block_size.max(1),
        serial: opts.serial.clone(),
        unmap: handler.table().unmap.is_some(),
        synchronous: handler.synchronous(),
    };
    let dev = HostDevice::new(params)
        .ok_or("the configuration or serial contains a NUL byte, or memory is short")?;
    let dev = Arc::new(dev);
    open_device(handler, &dev)?;
    Ok(dev)
}

/// Starts the device's worker thread (closing the device when it cannot start).
fn spawn_worker(
    dev: &Arc<HostDevice>,
    handler: &Arc<Handler>,
) -> Result<(Sender<Msg>, JoinHandle<()>), String> {
    let (tx, rx) = mpsc::channel();
    *dev.worker.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx.clone());
    let spawned = {
        let (dev, handler) = (dev.clone(), handler.clone());
        std::thread::Builder::new()
            .name(format!("tcmu-{}", handler.subtype))
            .spawn(move || exec::worker(rx, dev, handler))
    };
    match spawned {
        Ok(w) => Ok((tx, w)),
        Err(e) => {
            *dev.worker.lock().unwrap_or_else(|e| e.into_inner()) = None;
            close_device(handler, dev);
            Err(format!("cannot start the device's thread: {e}"))
        }
    }
}

/// Calls the handler's `close` (after every callout and completion).
fn close_device(handler: &Handler, dev: &HostDevice) {
    if let Some(close) = handler.table().close {
        #[allow(unsafe_code)]
        // SAFETY: the handler's close on a device it opened, with nothing in flight.
        unsafe {
            close(dev.as_ptr())
        };
    }
    dev.set_private(std::ptr::null_mut());
}

impl TcmuStore {
    /// Loads the handler, opens the device and starts its worker. Errors are one line naming
    /// the handler file or the image and the reason (missing plugin, dlopen's message,
    /// check_config's reason, the handler's open error).
    pub fn open(opts: &TcmuOptions) -> Result<TcmuStore, String> {
        let (subtype, _) = split_cfgstring(&opts.cfgstring)?;
        let handler = loader::load(&opts.handler_dir, subtype)?;
        let t = handler.table();
        if t.read.is_none() || t.write.is_none() {
            return Err(if t.handle_cmd.is_some() {
                format!(
                    "{}: the {subtype} handler emulates SCSI commands itself (handle_cmd); \
                     open it as a TcmuScsiDevice",
                    handler.file_name()
                )
            } else {
                format!("{}: the handler has no read and write", handler.file_name())
            });
        }
        if subtype == "qcow" && opts.block_size != 512 {
            return Err(format!(
                "the qcow handler works in 512-byte blocks (block size {} is not supported)",
                opts.block_size
            ));
        }
        let dev = open_host(&handler, opts)?;
        let geometry = match read_geometry(&dev) {
            Ok(g) => g,
            Err(e) => {
                close_device(&handler, &dev);
                return Err(format!("{}: {e}", handler.file_name()));
            }
        };
        let (tx, worker) = spawn_worker(&dev, &handler)?;
        let caps = Capabilities {
            read_only: opts.read_only,
            volatile_cache: t.flush.is_some() && dev.write_cache.load(Ordering::Acquire),
            trim: t.unmap.is_some(),
            fast_zeroes: t.writesame.is_some(),
            persistent: true,
            rotational: !dev.solid_state.load(Ordering::Acquire),
        };
        let discard = Granules::of(&dev, u64::from(geometry.block_size));
        log::debug!(
            "tcmu {}: opened by {} ({} blocks of {}, {})",
            dev.name(),
            handler.path.display(),
            geometry.num_blocks,
            geometry.block_size,
            if handler.synchronous() {
                "synchronous"
            } else {
                "asynchronous"
            }
        );
        Ok(TcmuStore {
            dev,
            handler,
            tx,
            worker: Some(worker),
            geometry,
            caps,
            queue_depth: opts.queue_depth.max(1) as usize,
            discard,
        })
    }

    /// The plugin file serving the store.
    pub fn handler_path(&self) -> &std::path::Path {
        &self.handler.path
    }

    /// True when the handler's callouts return their final status (nr_threads > 0).
    pub fn synchronous(&self) -> bool {
        self.handler.synchronous()
    }

    /// Runs one operation on the worker and waits for its result.
    fn run(&self, op: Op) -> io::Result<Vec<u8>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Job {
            op,
            reply: Reply::Wait(tx),
        };
        let stopped = || io::Error::other("the tcmu device is closed");
        self.tx.send(Msg::Jobs(vec![job])).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Checks a request is whole blocks inside the store.
    fn check(&self, offset: u64, len: u64) -> io::Result<()> {
        let bs = u64::from(self.geometry.block_size);
        match offset.checked_add(len) {
            Some(end) if offset % bs == 0 && len % bs == 0 && end <= self.geometry.size_bytes() => {
                Ok(())
            }
            _ => Err(einval()),
        }
    }

    fn check_write(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.caps.read_only {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        self.check(offset, len)
    }

    /// Writes zero buffers (when the handler has no writesame).
    fn write_zero_buffers(&self, offset: u64, len: u64) -> io::Result<()> {
        const CHUNK: u64 = 1 << 20;
        let mut done = 0;
        while done < len {
            let n = CHUNK.min(len - done);
            self.run(Op::Write {
                offset: offset + done,
                data: vec![0u8; n as usize],
                fua: false,
            })?;
            done += n;
        }
        Ok(())
    }
}

/// The geometry the handler left after `open` (zbc and fbo set their own).
fn read_geometry(dev: &HostDevice) -> Result<Geometry, String> {
    let block_size = dev.block_size.load(Ordering::Acquire);
    let num_blocks = dev.num_lbas.load(Ordering::Acquire);
    if block_size != 512 && block_size != 4096 {
        return Err(format!(
            "the handler set a block size of {block_size} (512 or 4096 are supported)"
        ));
    }
    if num_blocks == 0 {
        return Err("the handler reported an empty device".into());
    }
    Ok(Geometry {
        block_size,
        num_blocks,
    })
}

impl BlockStore for TcmuStore {
    fn describe(&self) -> String {
        format!("tcmu:{}", self.dev.name())
    }

    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(());
        }
        let data = self.run(Op::Read {
            offset,
            len: buf.len(),
        })?;
        if data.len() != buf.len() {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        buf.copy_from_slice(&data);
        Ok(())
    }

    fn write(&self, offset: u64, buf: &[u8], fua: bool) -> io::Result<()> {
        self.check_write(offset, buf.len() as u64)?;
        if buf.is_empty() {
            return Ok(());
        }
        self.run(Op::Write {
            offset,
            data: buf.to_vec(),
            fua,
        })
        .map(drop)
    }

    fn flush(&self) -> io::Result<()> {
        self.run(Op::Flush).map(drop)
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_write(offset, len)?;
        if !self.caps.trim {
            return self.write_zeroes(offset, len);
        }
        let Some((first, last)) = self.discard.inside(offset, len) else {
            return self.write_zeroes(offset, len);
        };
        if first > offset {
            self.write_zeroes(offset, first - offset)?;
        }
        let bs = u64::from(self.geometry.block_size);
        let g = self.discard.size;
        let max = u64::from(self.dev.max_unmap_len.load(Ordering::Acquire).max(1)) * bs;
        let max = (max / g).max(1) * g;
        let mut at = first;
        while at < last {
            let n = max.min(last - at);
            self.run(Op::Unmap { offset: at, len: n })?;
            at += n;
        }
        let end = offset + len;
        if end > last {
            self.write_zeroes(last, end - last)?;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check_write(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        if !self.caps.fast_zeroes {
            return self.write_zero_buffers(offset, len);
        }
        let block = vec![0u8; self.geometry.block_size as usize];
        self.run(Op::WriteSame { offset, len, block }).map(drop)
    }

    fn open_queue(&self) -> Option<io::Result<Box<dyn IoQueue>>> {
        let q = TcmuQueue::new(self.tx.clone(), self.queue_depth, self.caps.read_only);
        Some(q.map(|q| Box::new(q) as Box<dyn IoQueue>))
    }
}

impl Drop for TcmuStore {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        *self.dev.worker.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.dev.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if self.dev.in_flight.load(Ordering::Acquire) > 0 {
            log::error!(
                "tcmu {}: the handler never completed some commands; the device is left open",
                self.dev.name()
            );
            std::mem::forget(self.dev.clone());
            return;
        }
        close_device(&self.handler, &self.dev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfgstring_parts() {
        assert_eq!(
            split_cfgstring("qcow//srv/a.qcow2").expect("ok"),
            ("qcow", "/srv/a.qcow2")
        );
        assert_eq!(
            split_cfgstring("rbd/pool/img").expect("ok"),
            ("rbd", "pool/img")
        );
        for bad in ["qcow", "/x", "qcow/", ""] {
            let e = split_cfgstring(bad).expect_err(bad);
            assert!(e.contains("expected SUBTYPE/CONFIG"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        let mut o = TcmuOptions::new("fakeasync/x");
        let e = device_size(&o, "fakeasync", "x").unwrap_err();
        assert!(e.contains("give size= for the fakeasync handler"), "{e}");
        o.size = Some(1000);
        assert!(device_size(&o, "rbd", "p/i")
            .unwrap_err()
            .contains("not a non-zero multiple"));
        o.size = Some(1 << 20);
        assert_eq!(device_size(&o, "rbd", "p/i"), Ok(1 << 20));
        o.size = None;
        let e = device_size(&o, "rbd", "pool").unwrap_err();
        assert!(e.contains("names no image"), "{e}");
        let o = TcmuOptions::new("qcow//nonexistent/x.qcow2");
        let e = device_size(&o, "qcow", "/nonexistent/x.qcow2").unwrap_err();
        assert!(e.starts_with("/nonexistent/x.qcow2: No such file"), "{e}");
    }

    #[test]
    fn trims_keep_to_whole_granules() {
        let blocks = Granules {
            size: 512,
            align: 0,
        };
        assert_eq!(blocks.inside(512, 1024), Some((512, 1536)));
        assert_eq!(blocks.inside(512, 0), None);
        let g = Granules {
            size: 65536,
            align: 0,
        };
        assert_eq!(g.inside(512, 512), None, "inside one granule");
        assert_eq!(
            g.inside(512, 65536),
            None,
            "across a boundary, no whole granule"
        );
        assert_eq!(g.inside(512, 3 * 65536), Some((65536, 3 * 65536)));
        assert_eq!(g.inside(0, 65536), Some((0, 65536)));
        assert_eq!(g.inside(u64::MAX - 10, 5), None, "no overflow");
        let shifted = Granules {
            size: 4096,
            align: 1024,
        };
        assert_eq!(shifted.inside(0, 8192), Some((1024, 5120)));
        assert_eq!(shifted.inside(1024, 4096), Some((1024, 5120)));
        let params = DeviceParams {
            cfgstring: "rbd/p/i".into(),
            size: 1 << 20,
            block_size: 512,
            max_xfer_blocks: 16384,
            serial: "s".into(),
            unmap: true,
            synchronous: false,
        };
        let dev = HostDevice::new(params).expect("device");
        assert_eq!(Granules::of(&dev, 512), blocks, "the handler set nothing");
        dev.opt_unmap_gran.store(128, Ordering::Release);
        dev.unmap_gran_align.store(128, Ordering::Release);
        assert_eq!(Granules::of(&dev, 512), g, "rbd's 64 KiB granules");
    }

    #[test]
    fn missing_handler_directory() {
        let mut o = TcmuOptions::new("qcow//x.qcow2");
        o.handler_dir = "/nonexistent-dir".into();
        let e = TcmuStore::open(&o).unwrap_err();
        assert!(
            e.contains("no handler for \"qcow\" in /nonexistent-dir"),
            "{e}"
        );
    }
}
