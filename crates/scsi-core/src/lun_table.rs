//! The LUN table of a target: routes commands to devices and answers for LUNs that have no
//! device (SAM-5 4.6.3, SPC-4 6.33).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::async_io::is_queued_opcode;
use crate::cdb::{self, byte, clip};
use crate::inquiry::{self, PERIPHERAL_NONE};
use crate::opcodes::{self, op};
use crate::report_luns;
use crate::sense::{Asc, Sense};
use crate::{Device, DeviceConfig, NexusId, Request, Response, Started};

/// The logical units of one target, by LUN number.
pub struct LunTable {
    luns: RwLock<BTreeMap<u64, Arc<Device>>>,
    /// Initiator port names of the logged-in nexuses, for LUNs mapped later.
    names: RwLock<BTreeMap<NexusId, String>>,
    /// Relative target ports of the logged-in nexuses, for LUNs mapped later.
    ports: RwLock<BTreeMap<NexusId, u16>>,
}

impl std::fmt::Debug for LunTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LunTable")
            .field("luns", &self.luns())
            .finish()
    }
}

impl LunTable {
    /// A table with these LUNs (a later duplicate number replaces an earlier one).
    pub fn new(luns: Vec<(u64, Arc<Device>)>) -> LunTable {
        LunTable {
            luns: RwLock::new(luns.into_iter().collect()),
            names: RwLock::new(BTreeMap::new()),
            ports: RwLock::new(BTreeMap::new()),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<u64, Arc<Device>>> {
        self.luns.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<u64, Arc<Device>>> {
        self.luns.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The device at `lun`, if any.
    pub fn device(&self, lun: u64) -> Option<Arc<Device>> {
        self.read().get(&lun).cloned()
    }

    /// Mapped LUN numbers, ascending.
    pub fn luns(&self) -> Vec<u64> {
        self.read().keys().copied().collect()
    }

    /// The logical unit of this table that VPD 83h designator `d` names.
    fn designated(&self, d: &crate::xcopy::Designation) -> Option<Arc<Device>> {
        self.read().values().find(|dev| dev.designates(d)).cloned()
    }

    /// Maps (or replaces) a LUN and establishes REPORTED LUNS DATA HAS CHANGED on every LUN.
    pub fn map(&self, lun: u64, dev: Arc<Device>) {
        for (n, port) in self.names.read().unwrap_or_else(|e| e.into_inner()).iter() {
            dev.name_nexus(*n, port);
        }
        for (n, port) in self.ports.read().unwrap_or_else(|e| e.into_inner()).iter() {
            dev.bind_target_port(*n, *port);
        }
        if let Some(count) = self.read().values().next().map(|d| d.lock().port_count) {
            dev.set_target_port_count(count);
        }
        self.write().insert(lun, dev);
        self.report_luns_changed();
    }

    /// Removes a LUN; establishes REPORTED LUNS DATA HAS CHANGED on the others. Returns the
    /// removed device.
    pub fn unmap(&self, lun: u64) -> Option<Arc<Device>> {
        let removed = self.write().remove(&lun);
        if removed.is_some() {
            self.report_luns_changed();
        }
        removed
    }

    /// Establishes REPORTED LUNS DATA HAS CHANGED (3Fh/0Eh) for every nexus on every LUN.
    pub fn report_luns_changed(&self) {
        for d in self.read().values() {
            d.establish_all(Asc::REPORTED_LUNS_DATA_CHANGED);
        }
    }

    /// Executes one command addressed to `lun`.
    pub fn execute(&self, lun: u64, req: &Request) -> Response {
        let dev = self.device(lun);
        let opcode = byte(req.cdb, 0);
        let mut resp = match (&dev, opcode) {
            (_, op::REPORT_LUNS) => self.report_luns(dev.as_deref(), req),
            (Some(d), _) if d.is_passthrough() => return d.execute_passthrough(req),
            (Some(d), op::EXTENDED_COPY) => {
                return d.execute_copy(req, &|des| self.designated(des));
            }
            (Some(d), _) => return d.execute(req),
            (None, op::INQUIRY) => unmapped_inquiry(req),
            (None, op::REQUEST_SENSE) => {
                let desc = byte(req.cdb, 1) & 0x01 != 0;
                let s = Sense::illegal(Asc::LUN_NOT_SUPPORTED).encode(desc);
                Response::good(clip(s, usize::from(byte(req.cdb, 4))))
            }
            (None, _) => Response::check(Sense::illegal(Asc::LUN_NOT_SUPPORTED).to_fixed()),
        };
        resp.data_out_wanted = 0;
        resp
    }

    /// Starts one command addressed to `lun`: READ, WRITE and SYNCHRONIZE CACHE of a device
    /// whose store has asynchronous queues come back as [`Started::Io`] once every check has
    /// passed, a SANITIZE and every command of a passthrough device (but REPORT LUNS and
    /// unit attentions, see [`crate::CdbHandler`]) as [`Started::Background`]; everything else runs to completion as in
    /// [`LunTable::execute`].
    pub fn start(&self, lun: u64, req: &Request) -> Started {
        let opcode = byte(req.cdb, 0);
        match self.device(lun) {
            Some(d) if d.is_passthrough() && opcode != op::REPORT_LUNS => d.start_passthrough(req),
            Some(d) if opcode == op::SANITIZE => d.start_sanitize(req),
            Some(d) if is_queued_opcode(opcode) && d.is_async() => d.start(req),
            _ => Started::Done(self.execute(lun, req)),
        }
    }

    /// REPORT LUNS, from any LUN. Clears REPORTED LUNS DATA HAS CHANGED for the nexus.
    fn report_luns(&self, dev: Option<&Device>, req: &Request) -> Response {
        let encode = |s: Sense| match dev {
            Some(d) => Response::check(d.encode_sense(&s)),
            None => Response::check(s.to_fixed()),
        };
        if let Some(d) = dev {
            d.touch(req.nexus);
        }
        let checked = opcodes::lookup(req.cdb, opcodes::Features::ALL)
            .map_err(|_| Sense::invalid_opcode())
            .and_then(|info| {
                cdb::check_reserved(req.cdb, info.usage)?;
                cdb::check_control(req.cdb, info.usage.len())
            });
        if let Err(s) = checked {
            return encode(s);
        }
        let mut luns = self.luns();
        if luns.is_empty() {
            luns.push(0);
        }
        match report_luns::report(req.cdb, &luns) {
            Ok(data) => {
                for d in self.read().values() {
                    d.clear_ua(req.nexus, Asc::REPORTED_LUNS_DATA_CHANGED);
                }
                Response::good(data)
            }
            Err(s) => encode(s),
        }
    }

    /// LOGICAL UNIT RESET of `lun` (see [`Device::lun_reset`]); false when there is no such
    /// LUN.
    pub fn lun_reset(&self, lun: u64) -> bool {
        match self.device(lun) {
            Some(d) => {
                d.lun_reset();
                true
            }
            None => false,
        }
    }

    /// TARGET WARM/COLD RESET: every LUN is reset.
    pub fn target_reset(&self) {
        for d in self.read().values() {
            d.target_reset();
        }
    }

    /// ABORT TASK SET / CLEAR TASK SET for one nexus on one LUN. Commands run to completion
    /// inside [`LunTable::execute`], so the device keeps no task state to drop; the transport
    /// discards the queued tasks.
    pub fn abort_task_set(&self, lun: u64, nexus: NexusId) {
        let _ = (lun, nexus);
    }

    /// Names the initiator port of an I_T nexus at login: `name,i,0xisid` (the iSCSI
    /// initiator name and the ISID in hex), the form of an iSCSI TransportID. Persistent
    /// reservations use it (READ FULL STATUS, REGISTER AND MOVE, APTPL).
    pub fn name_nexus(&self, nexus: NexusId, initiator_port: &str) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nexus, initiator_port.to_string());
        for d in self.read().values() {
            d.name_nexus(nexus, initiator_port);
        }
    }

    /// Sets the number of target ports (portal groups, numbered from 1) every LUN of the table
    /// is reached through (REPORT TARGET PORT GROUPS).
    pub fn set_target_port_count(&self, count: u16) {
        for d in self.read().values() {
            d.set_target_port_count(count);
        }
    }

    /// Records the relative target port of an I_T nexus at login: the portal group tag of the
    /// portal group its session came through (VPD 83h, persistent reservations).
    pub fn bind_target_port(&self, nexus: NexusId, port: u16) {
        self.ports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(nexus, port);
        for d in self.read().values() {
            d.bind_target_port(nexus, port);
        }
    }

    /// The I_T nexus is gone (session closed or dropped).
    pub fn nexus_lost(&self, nexus: NexusId) {
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&nexus);
        self.ports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&nexus);
        for d in self.read().values() {
            d.nexus_lost(nexus);
        }
    }

    /// Flushes every store; returns the first error after trying all.
    pub fn flush_all(&self) -> std::io::Result<()> {
        let mut first = Ok(());
        for d in self.read().values() {
            if let Err(e) = d.flush() {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

/// INQUIRY to a LUN without a device: peripheral qualifier 011b, device type 1Fh.
fn unmapped_inquiry(req: &Request) -> Response {
    let checked = opcodes::lookup(req.cdb, opcodes::Features::ALL)
        .map_err(|_| Sense::invalid_opcode())
        .and_then(|info| {
            cdb::check_reserved(req.cdb, info.usage)?;
            cdb::check_control(req.cdb, info.usage.len())?;
            inquiry::decode(req.cdb)
        });
    match checked {
        Ok((false, _, alloc)) => {
            let cfg = DeviceConfig::new(String::new());
            Response::good(clip(inquiry::standard_data(&cfg, PERIPHERAL_NONE), alloc))
        }
        Ok((true, 0x00, alloc)) => Response::good(clip(vec![PERIPHERAL_NONE, 0, 0, 0], alloc)),
        Ok((true, _, _)) => Response::check(Sense::invalid_cdb(2, None).to_fixed()),
        Err(s) => Response::check(s.to_fixed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{Status, TaskAttr};

    fn req<'a>(n: NexusId, cdb: &'a [u8]) -> Request<'a> {
        Request {
            nexus: n,
            cdb,
            data_out: &[],
            expected_len: 4096,
            attr: TaskAttr::Simple,
        }
    }

    const RL: [u8; 12] = [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    const TUR: [u8; 6] = [0; 6];

    fn table() -> LunTable {
        let (_, a) = dev();
        let (_, b) = dev();
        LunTable::new(vec![(1, Arc::new(a)), (300, Arc::new(b))])
    }

    #[test]
    fn report_luns_from_unmapped_lun0() {
        let t = table();
        let r = t.execute(0, &req(N1, &RL));
        assert_eq!(r.status, Status::GOOD);
        assert_eq!(&r.data_in[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&r.data_in[8..10], &[0, 1]);
        assert_eq!(&r.data_in[16..18], &[0x41, 0x2C]);
        let mut bad = RL;
        bad[2] = 7;
        assert_invalid_cdb(&t.execute(0, &req(N1, &bad)), 2, None);
        assert_eq!(t.luns(), vec![1, 300]);
    }

    #[test]
    fn empty_table_reports_lun0() {
        let t = LunTable::new(Vec::new());
        let r = t.execute(0, &req(N1, &RL));
        assert_eq!(
            r.data_in,
            vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn unmapped_lun_answers() {
        let t = table();
        let r = t.execute(0, &req(N1, &[0x12, 0, 0, 0, 96, 0]));
        assert_eq!(r.status, Status::GOOD);
        assert_eq!(r.data_in[0], 0x7F);
        assert_eq!(r.data_in.len(), 96);
        let r = t.execute(0, &req(N1, &[0x12, 1, 0, 0, 96, 0]));
        assert_eq!(r.data_in, vec![0x7F, 0, 0, 0]);
        assert_invalid_cdb(&t.execute(0, &req(N1, &[0x12, 1, 0x83, 0, 96, 0])), 2, None);
        assert_sense(&t.execute(0, &req(N1, &TUR)), 5, 0x2500);
        assert_sense(
            &t.execute(5, &req(N1, &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])),
            5,
            0x2500,
        );
        let r = t.execute(0, &req(N1, &[0x03, 0, 0, 0, 18, 0]));
        assert_eq!(r.status, Status::GOOD);
        assert_eq!((r.data_in[2], r.data_in[12]), (5, 0x25));
    }

    #[test]
    fn luns_changed_ua_cleared_by_report_luns() {
        let t = table();
        t.execute(1, &req(N1, &TUR));
        t.report_luns_changed();
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x3F0E);
        t.report_luns_changed();
        t.execute(0, &req(N1, &RL));
        assert_eq!(t.execute(1, &req(N1, &TUR)).status, Status::GOOD);
        assert_eq!(
            t.execute(300, &req(N1, &TUR)).status,
            Status::CHECK_CONDITION
        );
        assert_eq!(t.execute(300, &req(N1, &TUR)).status, Status::GOOD);
    }

    #[test]
    fn map_and_unmap_raise_ua() {
        let t = table();
        t.execute(1, &req(N1, &TUR));
        let (_, c) = dev();
        t.map(2, Arc::new(c));
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x3F0E);
        assert!(t.unmap(2).is_some());
        assert!(t.unmap(2).is_none());
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x3F0E);
        assert_eq!(t.luns(), vec![1, 300]);
    }

    #[test]
    fn target_ports_reach_every_lun_and_later_ones() {
        let t = table();
        t.set_target_port_count(2);
        t.bind_target_port(N2, 2);
        let (_, c) = dev();
        t.map(7, Arc::new(c));
        for lun in [1, 300, 7] {
            let d = t.device(lun).unwrap();
            assert_eq!(d.lock().port_count, 2, "LUN {lun}");
            assert_eq!(d.target_port_of(N2), 2, "LUN {lun}");
            assert_eq!(d.target_port_of(N1), 1, "LUN {lun}");
        }
        t.nexus_lost(N2);
        assert_eq!(t.device(7).unwrap().target_port_of(N2), 1);
    }

    #[test]
    fn resets_and_nexus_loss() {
        let t = table();
        t.execute(1, &req(N1, &TUR));
        t.execute(1, &req(N2, &TUR));
        assert!(t.lun_reset(1));
        assert!(!t.lun_reset(2));
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x2903);
        // The nexus that asked for the reset gets the unit attention too (SAM-5 6.3.3).
        assert_sense(&t.execute(1, &req(N2, &TUR)), 6, 0x2903);
        assert_eq!(t.execute(1, &req(N2, &TUR)).status, Status::GOOD);
        t.target_reset();
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x2900);
        assert_eq!(t.execute(1, &req(N1, &TUR)).status, Status::GOOD);
        t.nexus_lost(N1);
        assert_sense(&t.execute(1, &req(N1, &TUR)), 6, 0x2907);
        t.name_nexus(N1, "iqn.x,i,0x1");
        let (_, c) = dev();
        t.map(2, Arc::new(c));
        assert_eq!(
            t.device(2)
                .unwrap()
                .lock()
                .names
                .get(&N1)
                .map(String::as_str),
            Some("iqn.x,i,0x1")
        );
        t.nexus_lost(N1);
        assert!(t.device(1).unwrap().lock().names.is_empty());
        t.abort_task_set(1, N1);
        assert!(t.flush_all().is_ok());
    }
}
