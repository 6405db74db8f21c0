//! The block device: configuration, shared state and command dispatch.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use backstore::{BlockStore, Capabilities, Geometry};

use crate::cdb;
use crate::copy_results::CopyResults;
use crate::mode::ModeState;
use crate::opcodes::{self, op, CmdInfo, Features, LookupError};
use crate::persistent::PrState;
use crate::pr_persist::{PrPersistence, PrSnapshot};
use crate::sense::{CmdError, CmdResult, Sense};
use crate::unit_attention::UnitAttentions;
use crate::{NexusId, Request, Response, Status};

/// Static configuration of one logical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// T10 vendor identification (8 ASCII characters, space padded).
    pub vendor: String,
    /// Product identification (16 characters).
    pub product: String,
    /// Product revision level (4 characters).
    pub revision: String,
    /// Unit serial number (VPD 80h).
    pub serial: String,
    /// The 8-byte NAA designator of VPD 83h; its top nibble is the NAA type.
    pub naa: u64,
    /// Export the LUN write protected.
    pub read_only: bool,
    /// Initial WCE bit of the caching mode page.
    pub write_cache: bool,
    /// Largest single transfer in bytes (VPD B0h MAXIMUM TRANSFER LENGTH).
    pub max_transfer_bytes: u32,
    /// MAXIMUM UNMAP LBA COUNT of VPD B0h.
    pub max_unmap_blocks: u32,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT of VPD B0h.
    pub max_unmap_descriptors: u32,
    /// MAXIMUM WRITE SAME LENGTH in blocks (reported and enforced as at most the maximum
    /// transfer length).
    pub max_write_same_blocks: u64,
    /// MAXIMUM COMPARE AND WRITE LENGTH in blocks.
    pub max_compare_write_blocks: u8,
    /// The medium is removable (RMB): START STOP UNIT with LOEJ ejects and loads it, PREVENT
    /// ALLOW MEDIUM REMOVAL keeps it in.
    pub removable: bool,
    /// SANITIZE is allowed (without it the command is not supported).
    pub sanitize: bool,
    /// Where persistent reservations are saved when APTPL is requested (none: APTPL is not
    /// supported).
    pub pr_store: Option<PrPersistence>,
    /// Offer logical block provisioning (UNMAP, WRITE SAME with UNMAP, GET LBA STATUS, LBPME)
    /// when the store can deallocate; off: the LUN is reported fully provisioned.
    pub thin: bool,
    /// Physical block size in bytes: a power-of-two multiple of the logical block size, or 0
    /// for "same as the logical block" (LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT).
    pub physical_block_size: u32,
}

impl DeviceConfig {
    /// Defaults for a LUN with this serial number; the NAA designator is derived from it.
    pub fn new(serial: String) -> DeviceConfig {
        let naa = default_naa(&serial);
        DeviceConfig {
            vendor: "USTGT".to_string(),
            product: "ustgt".to_string(),
            revision: "0001".to_string(),
            serial,
            naa,
            read_only: false,
            write_cache: true,
            max_transfer_bytes: 64 << 20,
            max_unmap_blocks: 1 << 20,
            max_unmap_descriptors: 512,
            max_write_same_blocks: 1 << 22,
            max_compare_write_blocks: 1,
            removable: false,
            sanitize: false,
            thin: true,
            pr_store: None,
            physical_block_size: 0,
        }
    }
}

/// A locally assigned (type 3) NAA designator derived from `serial` by FNV-1a.
pub fn default_naa(serial: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serial.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (3 << 60) | (h & 0x0FFF_FFFF_FFFF_FFFF)
}

/// The persistent reservations saved in the configured store (none when there is no store,
/// nothing saved, or the saved state cannot be read: configuration checks report that before
/// the device is built, see [`crate::check_pr_state`]).
fn restore_pr(cfg: &DeviceConfig) -> PrState {
    let saved = cfg
        .pr_store
        .as_ref()
        .and_then(|s| s.0.load().ok().flatten());
    match saved.map(|b| PrSnapshot::decode(&b)) {
        Some(Ok(snapshot)) => PrState::restore(&snapshot),
        _ => PrState::default(),
    }
}

/// `req` with its CDB copied into `buf`, zero padded to at least 16 bytes.
pub(crate) fn pad_cdb<'a>(req: &Request<'a>, buf: &'a mut [u8; 32]) -> Request<'a> {
    let n = req.cdb.len().min(buf.len());
    buf[..n].copy_from_slice(&req.cdb[..n]);
    Request {
        cdb: &buf[..n.max(16)],
        ..*req
    }
}

/// Mutable per-device state, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub ua: UnitAttentions,
    pub mode: ModeState,
    /// Holder of an SPC-2 RESERVE(6/10).
    pub reserved_by: Option<NexusId>,
    pub pr: PrState,
    /// A removable medium is loaded (always true for a fixed medium).
    pub medium_present: bool,
    /// I_T nexuses that prevent medium removal (PREVENT ALLOW MEDIUM REMOVAL).
    pub prevent: BTreeSet<NexusId>,
    /// Held EXTENDED COPY status, for RECEIVE COPY RESULTS.
    pub copies: CopyResults,
    /// Initiator port names of the nexuses the transport named (`name,i,0xisid`).
    pub names: HashMap<NexusId, String>,
    /// The sanitize operation in progress, if any.
    pub sanitizing: Option<crate::sanitize::Progress>,
    /// Target ports (portal groups) the logical unit is reached through, numbered from 1.
    pub port_count: u16,
    /// The relative target port of each I_T nexus the transport bound to one.
    pub target_ports: HashMap<NexusId, u16>,
}

/// One SCSI block device (logical unit) over a [`BlockStore`]. `Send + Sync`: `execute` may
/// run on several threads at once.
pub struct Device {
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) cfg: DeviceConfig,
    pub(crate) geo: Geometry,
    pub(crate) caps: Capabilities,
    pub(crate) state: Mutex<State>,
    /// The write gate: COMPARE AND WRITE, ORWRITE, WRITE ATOMIC and SANITIZE hold it
    /// exclusively, every other synchronous write to the medium holds it shared, so those
    /// commands are atomic with respect to every write.
    pub(crate) caw: RwLock<()>,
    /// Whether the store offers asynchronous queues (probed once, on first use).
    pub(crate) async_io: OnceLock<bool>,
    /// The device model that executes every command of a passthrough logical unit
    /// ([`Device::passthrough`]).
    pub(crate) cdb_handler: Option<Arc<dyn crate::CdbHandler>>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("store", &self.store.describe())
            .field("cfg", &self.cfg)
            .field("geo", &self.geo)
            .finish()
    }
}

impl Device {
    /// A device over `store` with configuration `cfg`.
    pub fn new(store: Arc<dyn BlockStore>, cfg: DeviceConfig) -> Device {
        let geo = store.geometry();
        let caps = store.capabilities();
        let state = State {
            ua: UnitAttentions::default(),
            mode: ModeState::new(cfg.write_cache),
            reserved_by: None,
            pr: restore_pr(&cfg),
            medium_present: true,
            prevent: BTreeSet::new(),
            copies: CopyResults::default(),
            names: HashMap::new(),
            sanitizing: None,
            port_count: 1,
            target_ports: HashMap::new(),
        };
        Device {
            store,
            cfg,
            geo,
            caps,
            state: Mutex::new(state),
            caw: RwLock::new(()),
            async_io: OnceLock::new(),
            cdb_handler: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }

    /// The store geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Writes are refused (configured read-only or the store is read-only).
    pub fn read_only(&self) -> bool {
        self.cfg.read_only || self.caps.read_only
    }

    /// Thin provisioning (UNMAP, WRITE SAME with UNMAP, GET LBA STATUS) is offered: the
    /// store can deallocate and the configuration allows it.
    pub fn thin(&self) -> bool {
        self.caps.trim && self.cfg.thin
    }

    /// The optional command sets this logical unit offers.
    pub(crate) fn features(&self) -> Features {
        Features {
            trim: self.thin(),
            sanitize: self.cfg.sanitize,
        }
    }

    /// Holds the write gate exclusively (atomic read-modify-write and atomic writes).
    pub(crate) fn exclusive_writes(&self) -> RwLockWriteGuard<'_, ()> {
        self.caw.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the write gate shared (an ordinary write).
    pub(crate) fn shared_writes(&self) -> RwLockReadGuard<'_, ()> {
        self.caw.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the mutable state (recovering from poisoning: the state stays consistent
    /// because every update is a single assignment).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Executes one command.
    pub fn execute(&self, req: &Request) -> Response {
        if self.is_passthrough() {
            return self.execute_passthrough(req);
        }
        let mut padded = [0u8; 32];
        let inner = pad_cdb(req, &mut padded);
        let wanted = cdb::data_out_len(inner.cdb, self.geo.block_size);
        let result = self.run(&inner, req.cdb.len());
        self.respond(result, wanted)
    }

    /// Executes one EXTENDED COPY whose copy targets `resolve` finds among the logical units
    /// visible to the requester (the LUN table the command came through).
    pub(crate) fn execute_copy(&self, req: &Request, resolve: crate::xcopy::Resolver) -> Response {
        let mut padded = [0u8; 32];
        let inner = pad_cdb(req, &mut padded);
        let wanted = cdb::data_out_len(inner.cdb, self.geo.block_size);
        let result = self
            .prepare(&inner, req.cdb.len())
            .and_then(|_| self.extended_copy(&inner, resolve));
        self.respond(result, wanted)
    }

    /// The response for a command's result, with the Data-Out bytes it wanted.
    pub(crate) fn respond(&self, result: CmdResult, wanted: u32) -> Response {
        let mut resp = match result {
            Ok(data) => Response::good(data),
            Err(CmdError::Conflict) => Response::status(Status::RESERVATION_CONFLICT),
            Err(CmdError::Check(s)) => Response::check(s.encode(self.lock().mode.d_sense)),
        };
        resp.data_out_wanted = wanted;
        resp
    }

    /// True when the store offers asynchronous queues ([`backstore::BlockStore::open_queue`]).
    pub fn is_async(&self) -> bool {
        *self
            .async_io
            .get_or_init(|| self.store.open_queue().is_some_and(|q| q.is_ok()))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// Encodes `sense` in the format selected by the control mode page.
    pub(crate) fn encode_sense(&self, sense: &Sense) -> Vec<u8> {
        sense.encode(self.lock().mode.d_sense)
    }

    /// Runs the command in `req` (whose CDB is zero padded; `cdb_len` is the length the
    /// transport delivered).
    fn run(&self, req: &Request, cdb_len: usize) -> CmdResult {
        let info = self.prepare(req, cdb_len)?;
        self.dispatch(req, info)
    }

    /// Every check that comes before a command's own work: opcode, unit attention, CDB
    /// fields, reservations. Returns the command's table entry.
    pub(crate) fn prepare(
        &self,
        req: &Request,
        cdb_len: usize,
    ) -> Result<&'static CmdInfo, CmdError> {
        if cdb_len == 0 {
            return Err(Sense::invalid_opcode().into());
        }
        let found = opcodes::lookup(req.cdb, self.features());
        self.admit(req, found.ok())?;
        let info = found.map_err(|e| match e {
            LookupError::Opcode => Sense::invalid_opcode(),
            LookupError::ServiceAction => Sense::invalid_cdb(1, Some(4)),
        })?;
        if cdb_len < info.usage.len() {
            return Err(Sense::invalid_cdb(0, None).into());
        }
        cdb::check_reserved(req.cdb, info.usage)?;
        cdb::check_control(req.cdb, info.usage.len())?;
        self.check_reservations(req.nexus, info)?;
        self.check_sanitizing(info)?;
        self.check_medium(info)?;
        Ok(info)
    }

    /// Registers the nexus and reports a pending unit attention, unless the command is
    /// exempt.
    fn admit(&self, req: &Request, info: Option<&CmdInfo>) -> Result<(), CmdError> {
        let mut st = self.lock();
        st.ua.register(req.nexus);
        if info.is_some_and(|c| c.ua_exempt) {
            return Ok(());
        }
        match st.ua.pop(req.nexus) {
            Some(asc) => Err(Sense::new(crate::SenseKey::UNIT_ATTENTION, asc).into()),
            None => Ok(()),
        }
    }

    pub(crate) fn dispatch(&self, req: &Request, info: &CmdInfo) -> CmdResult {
        match info.opcode {
            op::TEST_UNIT_READY => Ok(Vec::new()),
            op::REQUEST_SENSE => self.request_sense(req),
            op::INQUIRY => self.inquiry(req),
            op::READ_6 | op::READ_10 | op::READ_12 | op::READ_16 => self.read(req),
            op::WRITE_6 | op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => self.write(req),
            op::WRITE_VERIFY_10 | op::WRITE_VERIFY_12 | op::WRITE_VERIFY_16 => {
                self.write_verify(req)
            }
            op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => self.verify(req),
            op::READ_CAPACITY_10 => self.read_capacity_10(req),
            op::SERVICE_ACTION_IN_16 => match info.sa {
                Some(op::SA_GET_LBA_STATUS) => self.get_lba_status(req),
                _ => self.read_capacity_16(req),
            },
            op::MODE_SENSE_6 | op::MODE_SENSE_10 => self.mode_sense(req),
            op::MODE_SELECT_6 | op::MODE_SELECT_10 => self.mode_select(req),
            op::START_STOP_UNIT => self.start_stop_unit(req),
            op::PREVENT_ALLOW => self.prevent_allow(req),
            op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => self.synchronize_cache(req),
            op::PRE_FETCH_10 | op::PRE_FETCH_16 => self.pre_fetch(req),
            op::READ_DEFECT_DATA_10 | op::READ_DEFECT_DATA_12 => self.read_defect_data(req),
            op::WRITE_SAME_10 | op::WRITE_SAME_16 => self.write_same(req),
            op::UNMAP => self.unmap(req),
            op::COMPARE_AND_WRITE => self.compare_and_write(req),
            op::WRITE_ATOMIC_16 => self.write_atomic(req),
            op::SANITIZE => self.sanitize(req, info),
            op::ORWRITE_16 => self.orwrite(req),
            op::RESERVE_6 | op::RESERVE_10 => self.reserve(req),
            op::RELEASE_6 | op::RELEASE_10 => self.release(req),
            op::PERSISTENT_RESERVE_IN => self.pr_in(req),
            op::PERSISTENT_RESERVE_OUT => self.pr_out(req),
            op::EXTENDED_COPY => self.extended_copy(req, &|_| None),
            op::RECEIVE_COPY_RESULTS => self.receive_copy_results(req),
            op::MAINTENANCE_IN => match info.sa {
                Some(op::SA_REPORT_SUPPORTED_TMFS) => self.report_supported_tmfs(req),
                Some(op::SA_REPORT_TARGET_PORT_GROUPS) => self.report_target_port_groups(req),
                _ => self.report_supported_opcodes(req),
            },
            op::REPORT_LUNS => Err(Sense::invalid_opcode().into()),
            _ => Err(Sense::invalid_opcode().into()),
        }
    }

    /// Notes a nexus without running a command (e.g. REPORT LUNS answered by the table).
    pub(crate) fn touch(&self, nexus: NexusId) {
        self.lock().ua.register(nexus);
    }

    /// Establishes a unit attention for every nexus known to this device.
    pub(crate) fn establish_all(&self, asc: crate::Asc) {
        self.lock().ua.establish_all(asc);
    }

    /// Clears a specific unit attention condition for one nexus.
    pub(crate) fn clear_ua(&self, nexus: NexusId, asc: crate::Asc) {
        self.lock().ua.clear(nexus, asc);
    }

    /// LOGICAL UNIT RESET: releases SPC-2 reservations, restores the unit and establishes
    /// BUS DEVICE RESET FUNCTION OCCURRED for the initiator port of every I_T nexus, the one
    /// that asked for the reset included (SAM-5 6.3.3; persistent reservations are kept).
    pub fn lun_reset(&self) {
        self.reset(crate::Asc::BUS_DEVICE_RESET);
    }

    /// Target reset as seen by this LUN: like [`Device::lun_reset`] with POWER ON, RESET, OR
    /// BUS DEVICE RESET OCCURRED.
    pub fn target_reset(&self) {
        self.reset(crate::Asc::POWER_ON_RESET);
    }

    fn reset(&self, asc: crate::Asc) {
        let mut st = self.lock();
        st.reserved_by = None;
        st.prevent.clear();
        st.mode.reset(self.cfg.write_cache);
        st.copies.clear();
        st.ua.establish_all(asc);
    }

    /// The I_T nexus is gone: drops its SPC-2 reservation and its medium removal prevention;
    /// its pending unit attentions give way to I_T NEXUS LOSS OCCURRED, which the nexus
    /// reports when it comes back.
    pub fn nexus_lost(&self, nexus: NexusId) {
        let mut st = self.lock();
        if st.reserved_by == Some(nexus) {
            st.reserved_by = None;
        }
        st.prevent.remove(&nexus);
        st.copies.forget(nexus);
        st.names.remove(&nexus);
        st.target_ports.remove(&nexus);
        st.ua.lost(nexus);
    }

    /// Names the initiator port of an I_T nexus (`name,i,0xisid`, as in an iSCSI TransportID),
    /// for persistent reservations: READ FULL STATUS reports it, REGISTER AND MOVE and saved
    /// registrations (APTPL) find the nexus by it.
    pub fn name_nexus(&self, nexus: NexusId, port: &str) {
        let port = crate::transport_id::normalize(port);
        let mut st = self.lock();
        st.pr.bind(nexus, &port);
        st.names.insert(nexus, port);
    }

    /// Flushes the store.
    pub fn flush(&self) -> std::io::Result<()> {
        self.store.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn device_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Device>();
        check::<crate::LunTable>();
    }

    #[test]
    fn unknown_opcode_and_short_cdb() {
        let (_, d) = dev();
        let r = run(&d, &[0xC0, 0, 0, 0, 0, 0], &[]);
        assert_sense(&r, 5, 0x2000);
        assert_eq!(&r.sense[15..18], &[0xC0, 0, 0]);
        assert_sense(&run(&d, &[], &[]), 5, 0x2000);
        assert_invalid_cdb(&run(&d, &[0x28, 0, 0, 0, 0, 0], &[]), 0, None);
        // A 6-byte command inside a 16-byte CDB field is fine.
        let mut c = [0u8; 16];
        c[0] = 0x12;
        c[4] = 36;
        assert_eq!(good(run(&d, &c, &[])).len(), 36);
    }

    #[test]
    fn unit_attention_blocks_then_clears() {
        let (_, d) = dev();
        let r = run_on(&d, N1, &cdb10(0x28, 0, 0, 1), &[]);
        assert_sense(&r, 6, 0x2900);
        assert!(r.data_in.is_empty());
        good(run_on(&d, N1, &cdb10(0x28, 0, 0, 1), &[]));
        // An unknown opcode also reports the pending condition first.
        assert_sense(&run_on(&d, N2, &[0xC0, 0, 0, 0, 0, 0], &[]), 6, 0x2900);
        assert_sense(&run_on(&d, N2, &[0xC0, 0, 0, 0, 0, 0], &[]), 5, 0x2000);
    }

    #[test]
    fn concurrent_io() {
        let (s, d) = dev();
        clear_ua(&d, N1);
        let d = Arc::new(d);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let lba = u32::from(t) * 100 + i;
                        let w = run_on(&d, N1, &cdb10(0x2A, 0, lba, 1), &[t + 1; 512]);
                        assert_eq!(w.status, crate::Status::GOOD);
                        let r = run_on(&d, N1, &cdb10(0x28, 0, lba, 1), &[]);
                        assert_eq!(r.data_in, vec![t + 1; 512]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.calls().len(), 200);
    }

    #[test]
    fn config_defaults() {
        let c = DeviceConfig::new("abc".into());
        assert_eq!((c.vendor.as_str(), c.product.as_str()), ("USTGT", "ustgt"));
        assert_eq!(c.naa, default_naa("abc"));
        assert!(c.write_cache && !c.read_only);
        assert!(!c.removable && !c.sanitize && c.thin);
        assert_eq!(c.physical_block_size, 0);
    }
}
