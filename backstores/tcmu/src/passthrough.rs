//! Handlers that emulate SCSI themselves (`handle_cmd` only: handler_file_zbc.so,
//! handler_file_optical.so): every CDB goes to the handler with its Data-Out or Data-In
//! buffer as one iovec and a 96-byte sense buffer, on the device's worker thread (the only
//! thread that calls the handler, as for block operations); the handler's status becomes the
//! SCSI status and sense exactly as libtcmu's completion makes it ([`status::complete`]:
//! PASSTHROUGH_ERR keeps the handler's sense verbatim).
//!
//! Both handlers are synchronous for `handle_cmd` (ABI notes §4.3): the return value is
//! final. A handler that returned ASYNC_HANDLED would complete later through
//! `tcmur_cmd_complete`; such a command is refused with HARDWARE ERROR and its memory is kept
//! (a late completion finds no command magic in it and is ignored).

use std::ffi::c_int;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use crate::abi::{sts, Iovec, TcmulibCmd, TcmurCmd, SENSE_BUFFERSIZE};
use crate::device::HostDevice;
use crate::loader::Handler;
use crate::status;

/// The answer of a handler to one CDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdbResult {
    /// SCSI status (GOOD, CHECK CONDITION, BUSY, TASK SET FULL).
    pub status: u8,
    /// The Data-In buffer as the handler left it (empty for a Data-Out command).
    pub data_in: Vec<u8>,
    /// The sense data of CHECK CONDITION: the handler's buffer up to the length its own
    /// header gives (18 bytes for fixed format), else empty.
    pub sense: Vec<u8>,
}

/// One CDB for the worker.
pub(crate) struct CdbJob {
    pub cdb: Vec<u8>,
    pub data_out: Vec<u8>,
    pub data_in_len: usize,
    pub reply: SyncSender<CdbResult>,
}

/// A command as a `handle_cmd` handler sees it. Its first three fields are laid out like the
/// block commands of `exec.rs`, whose third field is their magic; here it is always zero, so
/// `tcmur_cmd_complete` never takes this for one of those.
#[repr(C)]
struct CdbCmd {
    runner: TcmurCmd,
    lib: TcmulibCmd,
    no_magic: u64,
    cdb: Vec<u8>,
    iov: Iovec,
    buf: Vec<u8>,
}

impl CdbCmd {
    /// The command over `cdb` (zero padded to 16 bytes) and `buf`, with every pointer set.
    fn new(cdb: &[u8], buf: Vec<u8>) -> Box<CdbCmd> {
        let mut padded = cdb.to_vec();
        if padded.len() < 16 {
            padded.resize(16, 0);
        }
        let mut cmd = Box::new(CdbCmd {
            runner: TcmurCmd::empty(),
            lib: TcmulibCmd {
                iov_cnt: 1,
                ..TcmulibCmd::empty()
            },
            no_magic: 0,
            cdb: padded,
            iov: Iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            buf,
        });
        cmd.iov = Iovec {
            iov_base: cmd.buf.as_mut_ptr().cast(),
            iov_len: cmd.buf.len(),
        };
        cmd.lib.cdb = cmd.cdb.as_mut_ptr();
        cmd.lib.iovec = &mut cmd.iov;
        cmd.runner.lib_cmd = &mut cmd.lib;
        cmd
    }
}

/// The sense bytes of a buffer: the length its header gives (fixed or descriptor format),
/// 18 bytes when the header is not a sense header.
pub(crate) fn sense_len(sense: &[u8; SENSE_BUFFERSIZE]) -> usize {
    match sense[0] & 0x7F {
        0x70..=0x73 => (8 + usize::from(sense[7])).min(SENSE_BUFFERSIZE),
        _ => 18,
    }
}

/// The result of a final handler status over the command's buffers.
fn result(status: c_int, cmd: &mut CdbCmd, data_out: bool) -> CdbResult {
    let scsi = status::complete(status, &mut cmd.lib.sense_buf);
    let sense = if scsi == status::CHECK_CONDITION {
        cmd.lib.sense_buf[..sense_len(&cmd.lib.sense_buf)].to_vec()
    } else {
        Vec::new()
    };
    let data_in = if data_out || scsi != status::GOOD {
        Vec::new()
    } else {
        std::mem::take(&mut cmd.buf)
    };
    CdbResult {
        status: scsi,
        data_in,
        sense,
    }
}

/// Runs one CDB through the handler's `handle_cmd` (on the device's worker).
pub(crate) fn execute(job: &CdbJob, dev: &Arc<HostDevice>, handler: &Handler) -> CdbResult {
    let data_out = !job.data_out.is_empty();
    let buf = if data_out {
        job.data_out.clone()
    } else {
        vec![0u8; job.data_in_len]
    };
    let mut cmd = CdbCmd::new(&job.cdb, buf);
    let Some(handle) = handler.table().handle_cmd else {
        return result(sts::NOT_HANDLED, &mut cmd, data_out);
    };
    let ptr: *mut TcmurCmd = &mut cmd.runner;
    // SAFETY: the handler's handle_cmd with the host's live device and a command whose
    // tcmur_cmd, tcmulib_cmd, CDB (at least 16 bytes), iovec, buffer and sense buffer stay
    // valid and unmoved (boxed) for the whole call, as the daemon passes them.
    let rc = unsafe { handle(dev.as_ptr(), ptr) };
    if rc == sts::ASYNC_HANDLED {
        log::error!(
            "tcmu {}: {} completed a command asynchronously, which handle_cmd handlers do not \
             do; refused",
            dev.name(),
            handler.file_name()
        );
        Box::leak(cmd);
        let mut sense = [0u8; SENSE_BUFFERSIZE];
        let status = status::complete(sts::HW_ERR, &mut sense);
        return CdbResult {
            status,
            data_in: Vec::new(),
            sense: sense[..18].to_vec(),
        };
    }
    if rc != sts::OK {
        log::debug!(
            "tcmu {}: CDB {:02x?} ended with status {} ({})",
            dev.name(),
            job.cdb,
            rc,
            status::name(rc)
        );
    }
    result(rc, &mut cmd, data_out)
}

/// Runs `job` and sends the result back.
pub(crate) fn run(job: CdbJob, dev: &Arc<HostDevice>, handler: &Handler) {
    let r = execute(&job, dev, handler);
    let _ = job.reply.send(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_points_at_itself() {
        let mut cmd = CdbCmd::new(&[0x12, 0, 0, 0, 36, 0], vec![0; 36]);
        assert_eq!(cmd.cdb.len(), 16, "padded to 16 bytes");
        assert_eq!(cmd.runner.lib_cmd, &mut cmd.lib as *mut TcmulibCmd);
        assert_eq!(cmd.lib.cdb, cmd.cdb.as_mut_ptr());
        assert_eq!(cmd.lib.iovec, &mut cmd.iov as *mut Iovec);
        assert_eq!((cmd.iov.iov_len, cmd.lib.iov_cnt), (36, 1));
        assert_eq!(cmd.no_magic, 0);
        let long = CdbCmd::new(&[0x7F; 32], Vec::new());
        assert_eq!(long.cdb.len(), 32, "a long CDB is kept whole");
    }

    #[test]
    fn results_follow_libtcmu() {
        let mut cmd = CdbCmd::new(&[0x28; 10], vec![9; 8]);
        let ok = result(sts::OK, &mut cmd, false);
        assert_eq!(
            (ok.status, ok.data_in, ok.sense),
            (0, vec![9; 8], Vec::new())
        );
        let mut cmd = CdbCmd::new(&[0x28; 10], vec![9; 8]);
        status::set_data(&mut cmd.lib.sense_buf, 5, 0x2100);
        cmd.lib.sense_buf[3] = 0x42;
        let err = result(sts::PASSTHROUGH_ERR, &mut cmd, false);
        assert_eq!(err.status, status::CHECK_CONDITION);
        assert!(err.data_in.is_empty());
        assert_eq!(
            err.sense,
            vec![0x70, 0, 5, 0x42, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0],
            "the handler's bytes, verbatim"
        );
        let mut cmd = CdbCmd::new(&[0x2A; 10], vec![9; 8]);
        let w = result(sts::NOT_HANDLED, &mut cmd, true);
        assert_eq!((w.sense[2], w.sense[12]), (5, 0x20));
        let mut cmd = CdbCmd::new(&[0; 6], Vec::new());
        assert_eq!(result(sts::BUSY, &mut cmd, false).status, status::BUSY);
    }

    #[test]
    fn sense_lengths() {
        let mut s = [0u8; SENSE_BUFFERSIZE];
        assert_eq!(sense_len(&s), 18);
        s[0] = 0x72;
        s[7] = 20;
        assert_eq!(sense_len(&s), 28);
        s[0] = 0xF0;
        s[7] = 250;
        assert_eq!(sense_len(&s), SENSE_BUFFERSIZE);
    }
}
