//! Building block stores from LUN specs, and the files that keep persistent reservations.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backstore::BlockStore;
use scsi_core::{CdbHandler, CdbOutcome, Device, DeviceConfig, Status};
use store_file::{FileOptions, FileStore};
use store_inject::InjectStore;
use store_null::NullStore;
use store_ram::RamStore;

use crate::lunspec::{LunSpec, StoreSpec};
use crate::size::format_size;

/// Opens (or creates) the store a LUN spec describes, wrapped in the fault-injection store when
/// the spec has `inject-*` options. Errors name the store and the OS error, e.g.
/// `file:/x/y: No such file or directory (os error 2) (give size= to create it)`.
pub fn open_store(spec: &LunSpec) -> Result<Arc<dyn BlockStore>, String> {
    let store = open_base(spec)?;
    if spec.inject.is_empty() {
        return Ok(store);
    }
    Ok(Arc::new(InjectStore::new(store, spec.inject.clone())))
}

/// Opens the store a LUN spec describes and builds the logical unit over it with `cfg`. A
/// tcmu handler that emulates SCSI itself (`handle_cmd` only: zbc, fbo) becomes a
/// passthrough logical unit ([`Device::passthrough`]) instead: the handler answers every
/// command but REPORT LUNS and unit attentions, and gets `cfg.serial` as its WWN.
pub fn open_device(spec: &LunSpec, cfg: DeviceConfig) -> Result<Device, String> {
    if let StoreSpec::Tcmu {
        cfgstring,
        size,
        handler_dir,
        queue_depth,
    } = &spec.store
    {
        let opts = tcmu_options(spec, cfgstring, *size, handler_dir.as_deref(), *queue_depth);
        let scsi = store_tcmu::emulates_scsi(&opts.handler_dir, cfgstring)
            .map_err(|e| format!("tcmu:{cfgstring}: {e}"))?;
        if scsi {
            return open_tcmu_scsi(spec, opts, cfg);
        }
    }
    Ok(Device::new(open_store(spec)?, cfg))
}

/// Opens a handler that emulates SCSI itself as a passthrough logical unit.
fn open_tcmu_scsi(
    spec: &LunSpec,
    mut opts: store_tcmu::TcmuOptions,
    cfg: DeviceConfig,
) -> Result<Device, String> {
    let name = format!("tcmu:{}", opts.cfgstring);
    if spec.read_only {
        return Err(format!(
            "{name}: readonly does not apply to a handler that emulates SCSI itself (the \
             optical handler takes fbo/ro//PATH)"
        ));
    }
    if !spec.inject.is_empty() {
        return Err(format!(
            "{name}: inject- options do not apply to a handler that emulates SCSI itself"
        ));
    }
    opts.serial = cfg.serial.clone();
    let dev = store_tcmu::TcmuScsiDevice::open(&opts).map_err(|e| format!("{name}: {e}"))?;
    Ok(Device::passthrough(Arc::new(TcmuCdb(dev)), cfg))
}

/// A tcmu handler that emulates SCSI, as the device model of a logical unit.
struct TcmuCdb(store_tcmu::TcmuScsiDevice);

impl CdbHandler for TcmuCdb {
    fn describe(&self) -> String {
        let (bs, blocks) = self.0.geometry();
        format!(
            "{} ({blocks} blocks of {bs}, SCSI emulated by the handler)",
            self.0.describe()
        )
    }

    fn execute(&self, cdb: &[u8], data_out: &[u8], data_in_len: u32) -> CdbOutcome {
        let r = self.0.execute(cdb, data_out, data_in_len as usize);
        CdbOutcome {
            status: Status(r.status),
            data_in: r.data_in,
            sense: r.sense,
        }
    }

    fn flush(&self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The persistent reservation state of one LUN in a small file (APTPL). Saving writes a
/// temporary file beside it, syncs it, renames it over the old one and syncs the directory,
/// so a crash leaves either the old or the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state kept at `path` (created, with its directory, on the first save).
    pub fn new(path: PathBuf) -> StateFile {
        StateFile { path }
    }

    fn temp_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }
}

impl scsi_core::PrStore for StateFile {
    fn load(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(&self.path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save(&self, data: &[u8]) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir)?;
        let temp = self.temp_path();
        let mut f = fs::File::create(&temp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&temp, &self.path)?;
        fs::File::open(dir)?.sync_all()
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The file name of the persistent reservation state of LUN `lun` of target `iqn`: the IQN
/// with characters outside `[A-Za-z0-9.:_-]` replaced by `_`, then `.lunN.pr`.
pub fn state_file_name(iqn: &str, lun: u64) -> String {
    let safe: String = iqn
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.lun{lun}.pr")
}

/// Checks the saved state at `path`, if there is one (a damaged file stops the start instead
/// of silently dropping reservations).
pub fn check_state_file(path: &Path) -> Result<(), String> {
    match fs::read(path) {
        Ok(data) => scsi_core::check_pr_state(&data)
            .map_err(|e| format!("persistent reservation state {}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "persistent reservation state {}: {e}",
            path.display()
        )),
    }
}

/// The hint added to an error opening `path` without a size.
fn missing_hint(e: &io::Error, size: Option<u64>) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound if size.is_none() => " (give size= to create it)",
        _ => "",
    }
}

fn open_base(spec: &LunSpec) -> Result<Arc<dyn BlockStore>, String> {
    match &spec.store {
        StoreSpec::Ram { size } => {
            let store = RamStore::new(*size, spec.block_size, spec.read_only)
                .map_err(|e| format!("ram:{}: {e}", format_size(*size)))?;
            Ok(Arc::new(store))
        }
        StoreSpec::RamFile { path, size, lock } => {
            open_ram_file(path, *size, *lock, spec).map(|s| Arc::new(s) as Arc<dyn BlockStore>)
        }
        StoreSpec::File {
            path,
            size,
            direct,
            mmap,
        } => {
            let opts = FileOptions {
                size: *size,
                block_size: spec.block_size,
                read_only: spec.read_only,
                create: true,
                direct: *direct,
                map: *mmap,
            };
            let store = FileStore::open(path, opts)
                .map_err(|e| format!("file:{}: {e}{}", path.display(), missing_hint(&e, *size)))?;
            Ok(Arc::new(store))
        }
        StoreSpec::Null { size } => {
            let store = NullStore::new(*size, spec.block_size)
                .map_err(|e| format!("null:{}: {e}", format_size(*size)))?
                .read_only(spec.read_only);
            Ok(Arc::new(store))
        }
        StoreSpec::Aio {
            path,
            size,
            direct,
            queue_depth,
        } => {
            let opts = store_aio::AioOptions {
                size: *size,
                block_size: spec.block_size,
                read_only: spec.read_only,
                create: true,
                direct: *direct,
                queue_depth: queue_depth.unwrap_or(store_aio::DEFAULT_QUEUE_DEPTH),
            };
            let store = store_aio::AioStore::open(path, opts)
                .map_err(|e| format!("aio:{}: {e}{}", path.display(), missing_hint(&e, *size)))?;
            Ok(Arc::new(store))
        }
        StoreSpec::Tcmu {
            cfgstring,
            size,
            handler_dir,
            queue_depth,
        } => open_tcmu(spec, cfgstring, *size, handler_dir.as_deref(), *queue_depth),
    }
}

/// Opens a tcmu-runner handler store; the error names the LUN's configuration string and the
/// handler's reason.
fn open_tcmu(
    spec: &LunSpec,
    cfgstring: &str,
    size: Option<u64>,
    handler_dir: Option<&Path>,
    queue_depth: Option<u32>,
) -> Result<Arc<dyn BlockStore>, String> {
    let opts = tcmu_options(spec, cfgstring, size, handler_dir, queue_depth);
    let store = store_tcmu::TcmuStore::open(&opts).map_err(|e| format!("tcmu:{cfgstring}: {e}"))?;
    Ok(Arc::new(store))
}

/// The options of a tcmu LUN.
fn tcmu_options(
    spec: &LunSpec,
    cfgstring: &str,
    size: Option<u64>,
    handler_dir: Option<&Path>,
    queue_depth: Option<u32>,
) -> store_tcmu::TcmuOptions {
    let mut opts = store_tcmu::TcmuOptions::new(cfgstring);
    opts.handler_dir = handler_dir.map_or_else(
        || PathBuf::from(crate::lunspec::DEFAULT_HANDLER_DIR),
        Path::to_path_buf,
    );
    opts.size = size;
    opts.block_size = spec.block_size;
    opts.read_only = spec.read_only;
    if let Some(serial) = &spec.serial {
        opts.serial = serial.clone();
    }
    if let Some(depth) = queue_depth {
        opts.queue_depth = depth;
    }
    opts
}

fn open_ram_file(
    path: &Path,
    size: Option<u64>,
    lock: bool,
    spec: &LunSpec,
) -> Result<RamStore, String> {
    RamStore::open_file(path, size, spec.block_size, spec.read_only, lock).map_err(|e| {
        let mut hint = missing_hint(&e, size).to_string();
        let text = path.to_string_lossy();
        if !text.contains('/') && e.kind() == io::ErrorKind::NotFound {
            hint.push_str(&format!(
                " (\"{text}\" was taken as a file name: a size looks like 1G, a relative path \
                 like ./{text})"
            ));
        }
        format!("ram:{}: {e}{hint}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lunspec::parse_lun_spec;

    fn open(text: &str) -> Result<Arc<dyn BlockStore>, String> {
        open_store(&parse_lun_spec(text).expect("spec"))
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ustgt-stores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.join(name)
    }

    #[test]
    fn ram_store_from_spec() {
        let s = open("ram:1M,block-size=4096").expect("ram");
        assert_eq!(s.geometry().num_blocks, 256);
        assert_eq!(s.geometry().block_size, 4096);
        assert!(!s.capabilities().persistent);
        let ro = open("ram:1M,readonly").expect("ram ro");
        assert!(ro.capabilities().read_only);
        assert!(ro.write(0, &[0; 512], false).is_err());
    }

    #[test]
    fn ram_store_error_names_it() {
        let mut spec = parse_lun_spec("ram:1M").expect("spec");
        spec.block_size = 1024;
        let err = open_store(&spec).err().expect("error");
        assert!(err.starts_with("ram:1M: block size 1024"), "{err}");
    }

    #[test]
    fn file_store_created_then_reopened() {
        let path = scratch("created.img");
        let _ = std::fs::remove_file(&path);
        let s = open(&format!("file:{},size=64K", path.display())).expect("create");
        assert_eq!(s.geometry().size_bytes(), 64 << 10);
        s.write(512, &[9; 512], true).expect("write");
        drop(s);
        let s = open(&format!("file:{},readonly", path.display())).expect("reopen");
        let mut buf = [0u8; 512];
        s.read(512, &mut buf).expect("read");
        assert_eq!(buf, [9; 512]);
        assert!(s.capabilities().read_only);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_file_hints_at_size() {
        let path = scratch("missing.img");
        let _ = std::fs::remove_file(&path);
        let err = open(&format!("file:{}", path.display()))
            .err()
            .expect("error");
        assert_eq!(
            err,
            format!(
                "file:{}: No such file or directory (os error 2) (give size= to create it)",
                path.display()
            )
        );
    }

    #[test]
    fn missing_directory_does_not_hint() {
        let err = open("file:/nonexistent-ustgt-dir/x.img,size=1M")
            .err()
            .expect("error");
        assert_eq!(
            err,
            "file:/nonexistent-ustgt-dir/x.img: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn wrong_size_names_the_path() {
        let path = scratch("sized.img");
        std::fs::write(&path, vec![0u8; 8192]).expect("write");
        let err = open(&format!("file:{},size=4K", path.display()))
            .err()
            .expect("error");
        assert!(
            err.starts_with(&format!("file:{}: the file is 8192 bytes", path.display())),
            "{err}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn null_store_from_spec() {
        let s = open("null:1G,block-size=4096").expect("null");
        assert_eq!(s.geometry().num_blocks, 1 << 18);
        assert!(s.capabilities().trim);
        let mut buf = [7u8; 4096];
        s.write(0, &buf, true).expect("write");
        s.read(0, &mut buf).expect("read");
        assert_eq!(buf, [0u8; 4096]);
        let ro = open("null:1M,readonly").expect("null ro");
        assert!(ro.capabilities().read_only && ro.write(0, &[0; 512], false).is_err());
    }

    #[test]
    fn persistent_ram_from_spec_survives_reopen() {
        let path = scratch("pram.img");
        let _ = std::fs::remove_file(&path);
        let s = open(&format!("ram:{},size=64K", path.display())).expect("create");
        assert!(s.capabilities().persistent && !s.capabilities().trim);
        s.write(4096, &[5; 512], true).expect("write");
        drop(s);
        let s = open(&format!("ram:{}", path.display())).expect("reopen");
        let mut buf = [0u8; 512];
        s.read(4096, &mut buf).expect("read");
        assert_eq!(buf, [5; 512]);
        assert_eq!(s.describe(), format!("ram:{}", path.display()));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn ram_name_without_slash_explains_itself() {
        let err = open("ram:1Q").err().expect("error");
        assert!(
            err.starts_with("ram:1Q: No such file or directory"),
            "{err}"
        );
        assert!(err.contains("(give size= to create it)"), "{err}");
        assert!(err.contains("\"1Q\" was taken as a file name"), "{err}");
    }

    #[test]
    fn file_direct_from_spec() {
        let path = scratch("direct.img");
        let _ = std::fs::remove_file(&path);
        match open(&format!("file:{},size=64K,direct", path.display())) {
            Ok(s) => {
                s.write(0, &[3; 512], true).expect("write");
                let mut buf = [0u8; 512];
                s.read(0, &mut buf).expect("read");
                assert_eq!(buf, [3; 512]);
            }
            Err(e) => assert!(e.contains("O_DIRECT"), "{e}"),
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn aio_store_from_spec() {
        let path = scratch("aio.img");
        let _ = std::fs::remove_file(&path);
        let s = open(&format!("aio:{},size=1M,queue-depth=8", path.display())).expect("aio");
        assert_eq!(s.geometry().num_blocks, 2048);
        s.write(512, &[9; 512], true).expect("write");
        let mut buf = [0u8; 512];
        s.read(512, &mut buf).expect("read");
        assert_eq!(buf, [9; 512]);
        let err = open("aio:/nonexistent/dir/x.img").err().expect("error");
        assert!(err.starts_with("aio:/nonexistent/dir/x.img: "), "{err}");
        assert!(err.contains("give size="), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn tcmu_errors_name_the_configuration() {
        let err = open("tcmu:qcow//nonexistent/x.qcow2").err().expect("error");
        assert!(err.starts_with("tcmu:qcow//nonexistent/x.qcow2: "), "{err}");
        let mut spec = parse_lun_spec("tcmu:qcow//x.qcow2").expect("spec");
        if let StoreSpec::Tcmu { handler_dir, .. } = &mut spec.store {
            *handler_dir = Some("/nonexistent-handlers".into());
        }
        let err = open_store(&spec).err().expect("error");
        assert!(
            err.contains("no handler for \"qcow\" in /nonexistent-handlers"),
            "{err}"
        );
    }

    #[test]
    fn inject_wraps_any_store() {
        let s = open("ram:1M,inject-read-error=2-3").expect("ram");
        assert!(
            s.describe().ends_with("(fault injection)"),
            "{}",
            s.describe()
        );
        let mut buf = [0u8; 512];
        s.read(512, &mut buf).expect("lba 1");
        let e = s.read(1024, &mut buf).expect_err("lba 2");
        assert_eq!(e.raw_os_error(), Some(5));
        let n = open("null:1M,inject-write-error=always,inject-write-errno=enospc").expect("null");
        assert_eq!(
            n.write(0, &[0; 512], false).expect_err("w").raw_os_error(),
            Some(28)
        );
        assert!(!open("ram:1M").expect("ram").describe().contains("fault"));
    }

    #[test]
    fn state_file_saves_atomically_and_checks() {
        use scsi_core::PrStore;
        let path = scratch("state-dir/iqn.x.lun0.pr");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let f = StateFile::new(path.clone());
        assert_eq!(f.load().unwrap(), None);
        assert!(check_state_file(&path).is_ok());
        f.save(b"ustgt-pr 1\naptpl 1\n").unwrap();
        assert_eq!(f.load().unwrap().unwrap(), b"ustgt-pr 1\naptpl 1\n");
        assert!(!f.temp_path().exists());
        assert!(check_state_file(&path).is_ok());
        f.save(b"garbage").unwrap();
        let e = check_state_file(&path).unwrap_err();
        assert!(e.contains("iqn.x.lun0.pr: line 1"), "{e}");
        assert_eq!(f.describe(), path.display().to_string());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn state_file_names() {
        assert_eq!(
            state_file_name("iqn.2026-11.io.ustgt:disk/1 x", 3),
            "iqn.2026-11.io.ustgt:disk_1_x.lun3.pr"
        );
    }
}
