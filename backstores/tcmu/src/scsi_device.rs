//! A logical unit served by a handler that emulates SCSI itself (`handle_cmd` only): the
//! zoned (`zbc`) and optical (`fbo`) file handlers. Unlike [`crate::TcmuStore`] it is not a
//! block store: the target hands it whole CDBs ([`TcmuScsiDevice::execute`]).

use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::device::HostDevice;
use crate::exec::Msg;
use crate::loader::{self, Handler};
use crate::passthrough::{CdbJob, CdbResult};
use crate::{close_device, open_host, spawn_worker, split_cfgstring, status, TcmuOptions};

/// SYNCHRONIZE CACHE (10), sent by [`TcmuScsiDevice::flush`].
const SYNC_CACHE_10: [u8; 10] = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// True when the handler of `cfgstring` (`SUBTYPE/CONFIG`) in `handler_dir` emulates SCSI
/// itself: it has `handle_cmd` and no read or write, so it must be opened as a
/// [`TcmuScsiDevice`]. Loads the plugin (once per process).
pub fn emulates_scsi(handler_dir: &Path, cfgstring: &str) -> Result<bool, String> {
    let (subtype, _) = split_cfgstring(cfgstring)?;
    let t = loader::load(handler_dir, subtype)?;
    let t = t.table();
    Ok(t.handle_cmd.is_some() && t.read.is_none() && t.write.is_none())
}

/// The size of an optical (`fbo`) device whose file exists: the file's length in whole
/// 2048-byte blocks. `config` is what follows `fbo/`: options, then the absolute path.
pub(crate) fn fbo_file_size(config: &str) -> Result<u64, String> {
    let mut rest = config;
    while !rest.starts_with('/') {
        match rest.split_once('/') {
            Some((_, after)) => rest = after,
            None => return Err(format!("the fbo configuration \"{config}\" has no path")),
        }
    }
    match std::fs::metadata(rest) {
        Ok(m) if m.len() >= 2048 => Ok(m.len() / 2048 * 2048),
        Ok(_) => Err(format!("{rest} is shorter than one block: give size=")),
        Err(e) => Err(format!("{rest}: {e} (give size= to create it)")),
    }
}

/// A device of a `handle_cmd` handler, with its worker thread.
pub struct TcmuScsiDevice {
    dev: Arc<HostDevice>,
    handler: Arc<Handler>,
    tx: Sender<Msg>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TcmuScsiDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcmuScsiDevice")
            .field("cfgstring", &self.dev.name())
            .field("handler", &self.handler.path)
            .finish()
    }
}

impl TcmuScsiDevice {
    /// Loads the handler, opens the device (the handler sets its own block size and
    /// capacity) and starts its worker. Errors are one line, as for [`crate::TcmuStore`].
    pub fn open(opts: &TcmuOptions) -> Result<TcmuScsiDevice, String> {
        let (subtype, _) = split_cfgstring(&opts.cfgstring)?;
        let handler = loader::load(&opts.handler_dir, subtype)?;
        if handler.table().handle_cmd.is_none() {
            return Err(format!(
                "{}: the {subtype} handler does not emulate SCSI commands (no handle_cmd)",
                handler.file_name()
            ));
        }
        let dev = open_host(&handler, opts)?;
        let (tx, worker) = spawn_worker(&dev, &handler)?;
        log::debug!(
            "tcmu {}: opened by {} ({} blocks of {}, SCSI emulated by the handler)",
            dev.name(),
            handler.path.display(),
            dev.num_lbas.load(Ordering::Acquire),
            dev.block_size.load(Ordering::Acquire)
        );
        Ok(TcmuScsiDevice {
            dev,
            handler,
            tx,
            worker: Some(worker),
        })
    }

    /// `tcmu:SUBTYPE/CONFIG`.
    pub fn describe(&self) -> String {
        format!("tcmu:{}", self.dev.name())
    }

    /// The plugin file serving the device.
    pub fn handler_path(&self) -> &Path {
        &self.handler.path
    }

    /// Block size and number of blocks as the handler set them in `open`.
    pub fn geometry(&self) -> (u32, u64) {
        (
            self.dev.block_size.load(Ordering::Acquire),
            self.dev.num_lbas.load(Ordering::Acquire),
        )
    }

    /// Runs one CDB in the handler and waits for it: `data_out` is the command's Data-Out
    /// (empty when it has none); otherwise a Data-In buffer of `data_in_len` bytes is given
    /// to the handler and comes back whole with GOOD status.
    pub fn execute(&self, cdb: &[u8], data_out: &[u8], data_in_len: usize) -> CdbResult {
        let (reply, rx) = mpsc::sync_channel(1);
        let job = CdbJob {
            cdb: cdb.to_vec(),
            data_out: data_out.to_vec(),
            data_in_len,
            reply,
        };
        // When the worker is gone the job (and its reply) is dropped and `recv` fails.
        let _ = self.tx.send(Msg::Cdb(job));
        match rx.recv() {
            Ok(r) => r,
            Err(_) => {
                // The worker is gone: HARDWARE ERROR, as for a failed handler.
                let mut sense = [0u8; crate::abi::SENSE_BUFFERSIZE];
                let status = status::complete(crate::abi::sts::HW_ERR, &mut sense);
                CdbResult {
                    status,
                    data_in: Vec::new(),
                    sense: sense[..18].to_vec(),
                }
            }
        }
    }

    /// SYNCHRONIZE CACHE through the handler; a handler that does not know the command has
    /// nothing to flush.
    pub fn flush(&self) -> io::Result<()> {
        let r = self.execute(&SYNC_CACHE_10, &[], 0);
        let invalid_opcode = r.sense.get(2) == Some(&5) && r.sense.get(12) == Some(&0x20);
        if r.status == status::GOOD || invalid_opcode {
            return Ok(());
        }
        Err(io::Error::from_raw_os_error(libc::EIO))
    }
}

impl Drop for TcmuScsiDevice {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        *self.dev.worker.lock().unwrap_or_else(|e| e.into_inner()) = None;
        close_device(&self.handler, &self.dev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fbo_sizes_come_from_the_file() {
        let dir = std::env::temp_dir().join(format!("ustgt-fbo-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let iso = dir.join("disc.iso");
        std::fs::write(&iso, vec![0u8; 5000]).expect("write");
        let p = iso.display().to_string();
        assert_eq!(fbo_file_size(&p), Ok(4096));
        assert_eq!(fbo_file_size(&format!("ro/{p}")), Ok(4096));
        let e = fbo_file_size(&format!("{}/none.iso", dir.display())).unwrap_err();
        assert!(e.contains("give size= to create it"), "{e}");
        assert!(fbo_file_size("ro").unwrap_err().contains("has no path"));
        std::fs::write(&iso, [0u8; 10]).expect("write");
        assert!(fbo_file_size(&p)
            .unwrap_err()
            .contains("shorter than one block"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_handler() {
        let e = emulates_scsi(Path::new("/nonexistent-dir"), "zbc//x").unwrap_err();
        assert!(e.contains("no handler for \"zbc\""), "{e}");
        let mut o = TcmuOptions::new("fbo//x.iso");
        o.handler_dir = "/nonexistent-dir".into();
        assert!(TcmuScsiDevice::open(&o).is_err());
    }
}
