//! The binary interface of tcmu-runner 1.5.4 handler plugins on x86_64 Linux: every structure
//! a handler reads or writes, its status codes, and compile-time checks of sizes and offsets.
//!
//! The layouts are those of Debian's `tcmu-runner` 1.5.4 packages (see the project's
//! `tcmu-runner-handler-abi.md`). They are valid for 1.5.4 only: 1.5.3 lacks `writesame` and
//! `caw` in [`TcmurHandler`], 1.4 has another callout API, and 1.6 moved the fields of
//! [`RunnerDevice`].

use std::ffi::{c_char, c_int, c_void};
use std::mem::{offset_of, size_of};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};

use libc::{iovec, off_t, size_t};

/// The opaque `struct tcmu_device *` handlers pass back to the host.
pub type DevPtr = *mut c_void;
/// A `struct tcmur_cmd *` as handlers see it.
pub type CmdPtr = *mut TcmurCmd;

/// `bool (*check_config)(const char *cfgstring, char **reason)`.
pub type CheckConfigFn = unsafe extern "C" fn(*const c_char, *mut *mut c_char) -> bool;
/// `int (*reconfig)(struct tcmu_device *, struct tcmulib_cfg_info *)`.
pub type ReconfigFn = unsafe extern "C" fn(DevPtr, *mut CfgInfo) -> c_int;
/// `int (*open)(struct tcmu_device *, bool reopen)`.
pub type OpenFn = unsafe extern "C" fn(DevPtr, bool) -> c_int;
/// `void (*close)(struct tcmu_device *)`.
pub type CloseFn = unsafe extern "C" fn(DevPtr);
/// `int (*handle_cmd)(struct tcmu_device *, struct tcmur_cmd *)`.
pub type HandleCmdFn = unsafe extern "C" fn(DevPtr, CmdPtr) -> c_int;
/// `int (*read|write)(dev, cmd, struct iovec *, size_t iov_cnt, size_t len, off_t off)`.
pub type RwFn = unsafe extern "C" fn(DevPtr, CmdPtr, *mut iovec, size_t, size_t, off_t) -> c_int;
/// `int (*flush)(struct tcmu_device *, struct tcmur_cmd *)`.
pub type FlushFn = unsafe extern "C" fn(DevPtr, CmdPtr) -> c_int;
/// `int (*unmap)(dev, cmd, uint64_t off, uint64_t len)` (bytes).
pub type UnmapFn = unsafe extern "C" fn(DevPtr, CmdPtr, u64, u64) -> c_int;
/// `int (*writesame|caw)(dev, cmd, uint64_t off, uint64_t len, struct iovec *, size_t)`.
pub type RangeIovFn = unsafe extern "C" fn(DevPtr, CmdPtr, u64, u64, *mut iovec, size_t) -> c_int;
/// `int (*report_event|unlock|get_lock_state)(struct tcmu_device *)`.
pub type DevFn = unsafe extern "C" fn(DevPtr) -> c_int;
/// `int (*lock)(struct tcmu_device *, uint16_t tag)`.
pub type LockFn = unsafe extern "C" fn(DevPtr, u16) -> c_int;
/// `int (*get_lock_tag)(struct tcmu_device *, uint16_t *tag)`.
pub type GetLockTagFn = unsafe extern "C" fn(DevPtr, *mut u16) -> c_int;
/// `bool (*update_logdir)(void)`.
pub type UpdateLogdirFn = unsafe extern "C" fn() -> bool;
/// `int (*init)(void)`, also the type of every plugin's `handler_init`.
pub type InitFn = unsafe extern "C" fn() -> c_int;
/// `void (*destroy)(void)`.
pub type DestroyFn = unsafe extern "C" fn();

/// `struct tcmur_handler` (1.5.4): what a plugin registers. 200 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct TcmurHandler {
    pub name: *const c_char,
    pub subtype: *const c_char,
    pub cfg_desc: *const c_char,
    pub opaque: *mut c_void,
    pub check_config: Option<CheckConfigFn>,
    pub reconfig: Option<ReconfigFn>,
    pub open: Option<OpenFn>,
    pub close: Option<CloseFn>,
    pub nr_threads: c_int,
    pub handle_cmd: Option<HandleCmdFn>,
    pub read: Option<RwFn>,
    pub write: Option<RwFn>,
    pub flush: Option<FlushFn>,
    pub unmap: Option<UnmapFn>,
    pub writesame: Option<RangeIovFn>,
    pub caw: Option<RangeIovFn>,
    pub report_event: Option<DevFn>,
    pub lock: Option<LockFn>,
    pub unlock: Option<DevFn>,
    pub get_lock_tag: Option<GetLockTagFn>,
    pub get_lock_state: Option<DevFn>,
    pub is_dbus_handler: bool,
    pub update_logdir: Option<UpdateLogdirFn>,
    pub init: Option<InitFn>,
    pub destroy: Option<DestroyFn>,
}

/// Size of the sense buffer of a command (the kernel's TCMU_SENSE_BUFFERSIZE).
pub const SENSE_BUFFERSIZE: usize = 96;

/// `struct tcmulib_cmd`: the command as libtcmu knows it. 136 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct TcmulibCmd {
    pub cmd_id: u16,
    pub cdb: *mut u8,
    pub iovec: *mut iovec,
    pub iov_cnt: size_t,
    pub sense_buf: [u8; SENSE_BUFFERSIZE],
    pub hm_private: *mut c_void,
}

/// `struct list_node`.
#[repr(C)]
#[derive(Debug)]
pub struct ListNode {
    pub next: *mut ListNode,
    pub prev: *mut ListNode,
}

/// `void (*done)(struct tcmu_device *, struct tcmur_cmd *, int sts)`.
pub type DoneFn = unsafe extern "C" fn(DevPtr, CmdPtr, c_int);

/// `struct tcmur_cmd`: what every callout receives. Handlers read only `lib_cmd`. 96 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct TcmurCmd {
    pub lib_cmd: *mut TcmulibCmd,
    pub iovec: *mut iovec,
    pub iov_cnt: size_t,
    pub iov_base_copy: *mut c_void,
    pub cmd_state: *mut c_void,
    pub requested: size_t,
    pub cmds_list_entry: ListNode,
    pub start_time: libc::timespec,
    pub timed_out: bool,
    pub done: Option<DoneFn>,
}

impl TcmulibCmd {
    /// A command with every pointer null and no sense, for the host to fill in.
    pub fn empty() -> TcmulibCmd {
        TcmulibCmd {
            cmd_id: 0,
            cdb: std::ptr::null_mut(),
            iovec: std::ptr::null_mut(),
            iov_cnt: 0,
            sense_buf: [0; SENSE_BUFFERSIZE],
            hm_private: std::ptr::null_mut(),
        }
    }
}

impl TcmurCmd {
    /// A runner command with every pointer null and no completion callback.
    pub fn empty() -> TcmurCmd {
        TcmurCmd {
            lib_cmd: std::ptr::null_mut(),
            iovec: std::ptr::null_mut(),
            iov_cnt: 0,
            iov_base_copy: std::ptr::null_mut(),
            cmd_state: std::ptr::null_mut(),
            requested: 0,
            cmds_list_entry: ListNode {
                next: std::ptr::null_mut(),
                prev: std::ptr::null_mut(),
            },
            start_time: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            timed_out: false,
            done: None,
        }
    }
}

/// `enum tcmulib_cfg_type` values.
pub const CFG_DEV_CFGSTR: c_int = 0;
/// Device size change.
pub const CFG_DEV_SIZE: c_int = 1;
/// Write cache change.
pub const CFG_WRITE_CACHE: c_int = 2;

/// `struct tcmulib_cfg_info` (the argument of `reconfig`): a type and a union. 16 bytes.
#[repr(C)]
#[derive(Debug)]
pub struct CfgInfo {
    pub kind: c_int,
    /// `uint64_t dev_size` / `char *dev_cfgstring` / `bool write_cache`.
    pub value: u64,
}

/// Lock states of [`RunnerDevice::lock_state`]: not known yet (the daemon's initial state).
pub const LOCK_STATE_UNKNOWN: u8 = 0;
/// The lock is not held (set when the handler reports it lost).
pub const LOCK_STATE_UNLOCKED: u8 = 1;

/// The prefix of the daemon's `struct tcmur_device` (424 bytes in 1.5.4) that
/// `tcmu_dev_get_private()` returns. Only handler_rbd.so reads it: the three counters and
/// `lock_state`. The counters are atomics here because the notify functions update them from
/// librbd threads; an atomic has the layout of the plain integer.
#[repr(C)]
#[derive(Debug)]
pub struct RunnerDevice {
    pub dev: DevPtr,
    pub hm_private: *mut c_void,
    pub cmdproc_thread: u64,
    pub flags: u32,
    pub failover_type: u8,
    pub recovery_entry: ListNode,
    pub lock_lost_cnt: AtomicU64,
    pub conn_lost_cnt: AtomicU64,
    pub cmd_timed_out_cnt: AtomicU64,
    pub event_work: *mut c_void,
    pub lock_lost: AtomicBool,
    pub lock_state: AtomicU8,
    /// The rest of the daemon's structure (mutexes, condition variables...), never read.
    pub rest: [u64; 42],
}

/// `struct iovec`, as handlers receive it.
pub type Iovec = iovec;

/// Handler status codes (`TCMU_STS_*`).
pub mod sts {
    use std::ffi::c_int;
    pub const ASYNC_HANDLED: c_int = -2;
    pub const NOT_HANDLED: c_int = -1;
    pub const OK: c_int = 0;
    pub const NO_RESOURCE: c_int = 1;
    pub const PASSTHROUGH_ERR: c_int = 2;
    pub const BUSY: c_int = 3;
    pub const WR_ERR: c_int = 4;
    pub const RD_ERR: c_int = 5;
    pub const MISCOMPARE: c_int = 6;
    pub const INVALID_CMD: c_int = 7;
    pub const INVALID_CDB: c_int = 8;
    pub const INVALID_PARAM_LIST: c_int = 9;
    pub const INVALID_PARAM_LIST_LEN: c_int = 10;
    pub const TIMEOUT: c_int = 11;
    pub const FENCED: c_int = 12;
    pub const HW_ERR: c_int = 13;
    pub const RANGE: c_int = 14;
    pub const FRMT_IN_PROGRESS: c_int = 15;
    pub const CAPACITY_CHANGED: c_int = 16;
    pub const NOTSUPP_SAVE_PARAMS: c_int = 17;
    pub const WR_ERR_INCOMPAT_FRMT: c_int = 18;
    pub const TRANSITION: c_int = 19;
    pub const IMPL_TRANSITION_ERR: c_int = 20;
    pub const EXPL_TRANSITION_ERR: c_int = 21;
    pub const NO_LOCK_HOLDERS: c_int = 22;
    pub const NOTSUPP_SEG_DESC_TYPE: c_int = 23;
    pub const NOTSUPP_TGT_DESC_TYPE: c_int = 24;
    pub const CP_TGT_DEV_NOTCONN: c_int = 25;
    pub const INVALID_CP_TGT_DEV_TYPE: c_int = 26;
    pub const TOO_MANY_SEG_DESC: c_int = 27;
    pub const TOO_MANY_TGT_DESC: c_int = 28;
}

// The layouts, checked against the 1.5.4 binaries' offsets at compile time.
const _: () = assert!(size_of::<TcmurHandler>() == 200);
const _: () = assert!(offset_of!(TcmurHandler, subtype) == 8);
const _: () = assert!(offset_of!(TcmurHandler, check_config) == 32);
const _: () = assert!(offset_of!(TcmurHandler, reconfig) == 40);
const _: () = assert!(offset_of!(TcmurHandler, open) == 48);
const _: () = assert!(offset_of!(TcmurHandler, close) == 56);
const _: () = assert!(offset_of!(TcmurHandler, nr_threads) == 64);
const _: () = assert!(offset_of!(TcmurHandler, handle_cmd) == 72);
const _: () = assert!(offset_of!(TcmurHandler, read) == 80);
const _: () = assert!(offset_of!(TcmurHandler, write) == 88);
const _: () = assert!(offset_of!(TcmurHandler, flush) == 96);
const _: () = assert!(offset_of!(TcmurHandler, unmap) == 104);
const _: () = assert!(offset_of!(TcmurHandler, writesame) == 112);
const _: () = assert!(offset_of!(TcmurHandler, caw) == 120);
const _: () = assert!(offset_of!(TcmurHandler, report_event) == 128);
const _: () = assert!(offset_of!(TcmurHandler, lock) == 136);
const _: () = assert!(offset_of!(TcmurHandler, unlock) == 144);
const _: () = assert!(offset_of!(TcmurHandler, get_lock_tag) == 152);
const _: () = assert!(offset_of!(TcmurHandler, get_lock_state) == 160);
const _: () = assert!(offset_of!(TcmurHandler, is_dbus_handler) == 168);
const _: () = assert!(offset_of!(TcmurHandler, update_logdir) == 176);
const _: () = assert!(offset_of!(TcmurHandler, init) == 184);
const _: () = assert!(offset_of!(TcmurHandler, destroy) == 192);

const _: () = assert!(size_of::<TcmulibCmd>() == 136);
const _: () = assert!(offset_of!(TcmulibCmd, cdb) == 8);
const _: () = assert!(offset_of!(TcmulibCmd, iovec) == 16);
const _: () = assert!(offset_of!(TcmulibCmd, iov_cnt) == 24);
const _: () = assert!(offset_of!(TcmulibCmd, sense_buf) == 32);
const _: () = assert!(offset_of!(TcmulibCmd, hm_private) == 128);

const _: () = assert!(size_of::<TcmurCmd>() == 96);
const _: () = assert!(offset_of!(TcmurCmd, lib_cmd) == 0);
const _: () = assert!(offset_of!(TcmurCmd, requested) == 40);
const _: () = assert!(offset_of!(TcmurCmd, cmds_list_entry) == 48);
const _: () = assert!(offset_of!(TcmurCmd, start_time) == 64);
const _: () = assert!(offset_of!(TcmurCmd, timed_out) == 80);
const _: () = assert!(offset_of!(TcmurCmd, done) == 88);

const _: () = assert!(size_of::<CfgInfo>() == 16);
const _: () = assert!(offset_of!(CfgInfo, value) == 8);

const _: () = assert!(size_of::<RunnerDevice>() == 424);
const _: () = assert!(offset_of!(RunnerDevice, hm_private) == 8);
const _: () = assert!(offset_of!(RunnerDevice, flags) == 24);
const _: () = assert!(offset_of!(RunnerDevice, failover_type) == 28);
const _: () = assert!(offset_of!(RunnerDevice, recovery_entry) == 32);
const _: () = assert!(offset_of!(RunnerDevice, lock_lost_cnt) == 0x30);
const _: () = assert!(offset_of!(RunnerDevice, conn_lost_cnt) == 0x38);
const _: () = assert!(offset_of!(RunnerDevice, cmd_timed_out_cnt) == 0x40);
const _: () = assert!(offset_of!(RunnerDevice, event_work) == 72);
const _: () = assert!(offset_of!(RunnerDevice, lock_lost) == 80);
const _: () = assert!(offset_of!(RunnerDevice, lock_state) == 0x51);

const _: () = assert!(size_of::<Iovec>() == 16);
const _: () = assert!(size_of::<off_t>() == 8);
const _: () = assert!(size_of::<Option<RwFn>>() == 8);

impl RunnerDevice {
    /// A zeroed block (lock state UNKNOWN), as the daemon has it before `open`.
    pub fn new() -> RunnerDevice {
        RunnerDevice {
            dev: std::ptr::null_mut(),
            hm_private: std::ptr::null_mut(),
            cmdproc_thread: 0,
            flags: 0,
            failover_type: 0,
            recovery_entry: ListNode {
                next: std::ptr::null_mut(),
                prev: std::ptr::null_mut(),
            },
            lock_lost_cnt: AtomicU64::new(0),
            conn_lost_cnt: AtomicU64::new(0),
            cmd_timed_out_cnt: AtomicU64::new(0),
            event_work: std::ptr::null_mut(),
            lock_lost: AtomicBool::new(false),
            lock_state: AtomicU8::new(LOCK_STATE_UNKNOWN),
            rest: [0; 42],
        }
    }
}

impl Default for RunnerDevice {
    fn default() -> Self {
        RunnerDevice::new()
    }
}
