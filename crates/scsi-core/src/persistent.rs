//! PERSISTENT RESERVE IN / OUT state (SPC-4 5.14, 6.15): registrations, the six reservation
//! types, the conflict check and the PERSISTENT RESERVE IN service actions. The PERSISTENT
//! RESERVE OUT service actions are in `pr_out.rs`, persistence across power loss (APTPL) in
//! `pr_persist.rs`.
//!
//! A registration belongs to an I_T nexus and, when the transport has named it
//! ([`crate::LunTable::name_nexus`]), to that initiator port: registrations restored from
//! saved state or made by REGISTER AND MOVE for a port that has not logged in yet are bound to
//! its nexus when the name appears.

use std::collections::HashMap;

use crate::cdb::{be16, byte, clip};
use crate::opcodes::Access;
use crate::pr_persist::PrSnapshot;
use crate::sense::CmdResult;
use crate::transport_id;
use crate::{Device, NexusId, Request};

/// Reservation types.
pub mod pr_type {
    pub const WRITE_EXCLUSIVE: u8 = 0x1;
    pub const EXCLUSIVE_ACCESS: u8 = 0x3;
    pub const WRITE_EXCLUSIVE_RO: u8 = 0x5;
    pub const EXCLUSIVE_ACCESS_RO: u8 = 0x6;
    pub const WRITE_EXCLUSIVE_AR: u8 = 0x7;
    pub const EXCLUSIVE_ACCESS_AR: u8 = 0x8;
}
use pr_type::*;

/// RELATIVE TARGET PORT IDENTIFIER of the first target port of a target.
pub(crate) const TARGET_PORT: u16 = 1;

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Identifies the registration (the reservation names its holder by it).
    pub id: u64,
    /// The reservation key.
    pub key: u64,
    /// The I_T nexus, once known.
    pub nexus: Option<NexusId>,
    /// The initiator port name (`name,i,0xisid`), when the transport gave it.
    pub port: Option<String>,
}

/// The persistent reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The holder's registration id; for the all-registrants types every registrant holds it.
    pub holder: u64,
    pub kind: u8,
}

impl Reservation {
    pub(crate) fn all_registrants(&self) -> bool {
        matches!(self.kind, WRITE_EXCLUSIVE_AR | EXCLUSIVE_ACCESS_AR)
    }
}

/// Registrations and the reservation of one logical unit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PrState {
    /// In registration order.
    pub regs: Vec<Registration>,
    pub generation: u32,
    pub reservation: Option<Reservation>,
    /// Persist through power loss is activated (the APTPL bit of the last registration).
    pub aptpl: bool,
    next_id: u64,
}

impl PrState {
    /// Any registration or reservation exists.
    pub fn active(&self) -> bool {
        !self.regs.is_empty() || self.reservation.is_some()
    }

    /// The registration of `nexus`.
    pub fn reg_of(&self, nexus: NexusId) -> Option<&Registration> {
        self.regs.iter().find(|r| r.nexus == Some(nexus))
    }

    /// The key registered by `nexus`.
    pub fn key_of(&self, nexus: NexusId) -> Option<u64> {
        self.reg_of(nexus).map(|r| r.key)
    }

    /// Adds a registration; returns its id.
    pub(crate) fn add(&mut self, key: u64, nexus: Option<NexusId>, port: Option<String>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.regs.push(Registration {
            id,
            key,
            nexus,
            port,
        });
        id
    }

    /// Whether registration `r` holds the reservation.
    pub(crate) fn holds(&self, r: &Registration) -> bool {
        match self.reservation {
            Some(res) if res.all_registrants() => true,
            Some(res) => res.holder == r.id,
            None => false,
        }
    }

    /// Whether `nexus` holds the reservation.
    pub fn is_holder(&self, nexus: NexusId) -> bool {
        self.reg_of(nexus).is_some_and(|r| self.holds(r))
    }

    /// Whether a command of class `access` from `nexus` conflicts with the reservation.
    pub fn conflicts(&self, nexus: NexusId, access: Access) -> bool {
        let Some(r) = self.reservation else {
            return false;
        };
        if access == Access::Allowed || self.is_holder(nexus) {
            return false;
        }
        let registered = self.key_of(nexus).is_some();
        match r.kind {
            WRITE_EXCLUSIVE => access == Access::Write,
            EXCLUSIVE_ACCESS => true,
            WRITE_EXCLUSIVE_RO | WRITE_EXCLUSIVE_AR => !registered && access == Access::Write,
            _ => !registered,
        }
    }

    /// Removes the registrations `keep` refuses; returns their nexuses.
    pub(crate) fn remove_where(&mut self, keep: impl Fn(&Registration) -> bool) -> Vec<NexusId> {
        let removed = self
            .regs
            .iter()
            .filter(|r| !keep(r))
            .filter_map(|r| r.nexus)
            .collect();
        self.regs.retain(keep);
        removed
    }

    /// Drops the reservation if its holder is no longer registered.
    pub(crate) fn fix_reservation(&mut self) {
        if let Some(r) = self.reservation {
            let gone = if r.all_registrants() {
                self.regs.is_empty()
            } else {
                !self.regs.iter().any(|x| x.id == r.holder)
            };
            if gone {
                self.reservation = None;
            }
        }
    }

    /// Binds registrations of initiator port `port` that have no nexus yet to `nexus`, and
    /// names the registration of `nexus`.
    pub(crate) fn bind(&mut self, nexus: NexusId, port: &str) {
        for r in &mut self.regs {
            if r.nexus.is_none() && r.port.as_deref() == Some(port) {
                r.nexus = Some(nexus);
            } else if r.nexus == Some(nexus) && r.port.is_none() {
                r.port = Some(port.to_string());
            }
        }
    }

    /// The saved form: named registrations only.
    pub(crate) fn snapshot(&self) -> PrSnapshot {
        let named: Vec<&Registration> = self.regs.iter().filter(|r| r.port.is_some()).collect();
        let reservation = self.reservation.and_then(|res| {
            if res.all_registrants() {
                return Some((None, res.kind));
            }
            let i = named.iter().position(|r| r.id == res.holder)?;
            Some((Some(i), res.kind))
        });
        PrSnapshot {
            generation: self.generation,
            aptpl: self.aptpl,
            regs: named
                .iter()
                .map(|r| (r.key, r.port.clone().unwrap_or_default()))
                .collect(),
            reservation,
        }
    }

    /// The state a saved snapshot describes (empty unless APTPL was active).
    pub(crate) fn restore(s: &PrSnapshot) -> PrState {
        let mut st = PrState {
            generation: s.generation,
            ..PrState::default()
        };
        if !s.aptpl {
            return st;
        }
        st.aptpl = true;
        let ids: Vec<u64> = s
            .regs
            .iter()
            .map(|(key, port)| st.add(*key, None, Some(port.clone())))
            .collect();
        st.reservation = s.reservation.and_then(|(holder, kind)| {
            let holder = match holder {
                Some(i) => *ids.get(i)?,
                None => 0,
            };
            Some(Reservation { holder, kind })
        });
        st.fix_reservation();
        st
    }
}

/// Whether `t` is one of the six reservation types.
pub(crate) fn valid_type(t: u8) -> bool {
    matches!(
        t,
        WRITE_EXCLUSIVE
            | EXCLUSIVE_ACCESS
            | WRITE_EXCLUSIVE_RO
            | EXCLUSIVE_ACCESS_RO
            | WRITE_EXCLUSIVE_AR
            | EXCLUSIVE_ACCESS_AR
    )
}

impl Device {
    /// PERSISTENT RESERVE IN: READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL
    /// STATUS.
    pub(crate) fn pr_in(&self, req: &Request) -> CmdResult {
        let alloc = usize::from(be16(req.cdb, 7));
        let st = self.lock();
        let pr = &st.pr;
        let mut d = pr.generation.to_be_bytes().to_vec();
        match byte(req.cdb, 1) & 0x1F {
            0x00 => {
                d.extend_from_slice(&((pr.regs.len() * 8) as u32).to_be_bytes());
                for r in &pr.regs {
                    d.extend_from_slice(&r.key.to_be_bytes());
                }
            }
            0x01 => match pr.reservation {
                Some(r) => {
                    d.extend_from_slice(&16u32.to_be_bytes());
                    let key = if r.all_registrants() {
                        0
                    } else {
                        pr.regs
                            .iter()
                            .find(|x| x.id == r.holder)
                            .map_or(0, |x| x.key)
                    };
                    d.extend_from_slice(&key.to_be_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0, r.kind, 0, 0]);
                }
                None => d.extend_from_slice(&[0; 4]),
            },
            0x02 => d = self.pr_capabilities(pr),
            _ => d = full_status(pr, &st.target_ports),
        }
        Ok(clip(d, alloc))
    }

    /// REPORT CAPABILITIES: PTPL_C when a state store is configured, PTPL_A when APTPL is
    /// active; TMV with all six types; ALLOW COMMANDS 0; no SIP_C, ATP_C or CRH.
    fn pr_capabilities(&self, pr: &PrState) -> Vec<u8> {
        let ptpl_c = u8::from(self.cfg.pr_store.is_some());
        vec![0, 8, ptpl_c, 0x80 | u8::from(pr.aptpl), 0xEA, 0x01, 0, 0]
    }
}

/// READ FULL STATUS: one descriptor per registration, with the relative target port of its
/// I_T nexus (`ports`; 1 when not logged in) and the iSCSI TransportID of its initiator port
/// when the transport named it.
fn full_status(pr: &PrState, ports: &HashMap<NexusId, u16>) -> Vec<u8> {
    let mut body = Vec::new();
    for r in &pr.regs {
        body.extend_from_slice(&r.key.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        let holder = pr.holds(r);
        body.push(u8::from(holder));
        body.push(if holder {
            pr.reservation.map_or(0, |res| res.kind)
        } else {
            0
        });
        body.extend_from_slice(&[0; 4]);
        let port = r.nexus.and_then(|n| ports.get(&n).copied());
        body.extend_from_slice(&port.unwrap_or(TARGET_PORT).to_be_bytes());
        let tid = r
            .port
            .as_deref()
            .map(transport_id::encode)
            .unwrap_or_default();
        body.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        body.extend(tid);
    }
    let mut d = pr.generation.to_be_bytes().to_vec();
    d.extend_from_slice(&(body.len() as u32).to_be_bytes());
    d.extend(body);
    d
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{Device, NexusId, Response, Status};

    fn prout(d: &Device, n: NexusId, sa: u8, kind: u8, key: u64, sa_key: u64) -> Response {
        let cdb = [0x5F, sa, kind, 0, 0, 0, 0, 0, 24, 0];
        let mut p = key.to_be_bytes().to_vec();
        p.extend_from_slice(&sa_key.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        run_on(d, n, &cdb, &p)
    }

    fn prin(d: &Device, n: NexusId, sa: u8) -> Vec<u8> {
        good(run_on(d, n, &[0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]))
    }

    fn setup() -> Device {
        let (_, d) = dev();
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        d
    }

    const READ: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn write(d: &Device, n: NexusId) -> Status {
        run_on(d, n, &cdb10(0x2A, 0, 0, 1), &[0; 512]).status
    }

    #[test]
    fn register_and_read_keys() {
        let d = setup();
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N2, 0, 0, 0, 0xBB));
        assert_eq!(
            prout(&d, N2, 0, 0, 0x99, 0xCC).status,
            Status::RESERVATION_CONFLICT
        );
        let k = prin(&d, N1, 0);
        assert_eq!(&k[..8], &[0, 0, 0, 2, 0, 0, 0, 16]);
        assert_eq!(&k[8..16], &0xAAu64.to_be_bytes());
        assert_eq!(&k[16..24], &0xBBu64.to_be_bytes());
        good(prout(&d, N2, 6, 0, 0, 0xCC));
        good(prout(&d, N1, 0, 0, 0xAA, 0));
        let k = prin(&d, N1, 0);
        assert_eq!(
            &k[..16],
            &[0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0xCC]
        );
        let t = good(run_on(&d, N1, &[0x5E, 0, 0, 0, 0, 0, 0, 0, 12, 0], &[]));
        assert_eq!(t.len(), 12);
    }

    #[test]
    fn write_exclusive_access() {
        let d = setup();
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N1, 1, 1, 0xAA, 0));
        let r = prin(&d, N2, 1);
        assert_eq!(&r[4..8], &[0, 0, 0, 16]);
        assert_eq!(&r[8..16], &0xAAu64.to_be_bytes());
        assert_eq!(r[21], 1);
        assert_eq!(write(&d, N1), Status::GOOD);
        assert_eq!(write(&d, N2), Status::RESERVATION_CONFLICT);
        good(run_on(&d, N2, &READ, &[]));
        good(run_on(&d, N2, &[0; 6], &[]));
        assert_eq!(
            run_on(&d, N2, &[0x16, 0, 0, 0, 0, 0], &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(prout(&d, N1, 2, 1, 0xAA, 0));
        assert_eq!(write(&d, N2), Status::GOOD);
    }

    #[test]
    fn exclusive_access_and_registrants_only() {
        let d = setup();
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N1, 1, 3, 0xAA, 0));
        assert_eq!(
            run_on(&d, N2, &READ, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(prout(&d, N2, 0, 0, 0, 0xBB));
        assert_eq!(
            run_on(&d, N2, &READ, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        assert_eq!(
            prout(&d, N2, 1, 3, 0xBB, 0).status,
            Status::RESERVATION_CONFLICT
        );
        assert_sense(&prout(&d, N1, 2, 1, 0xAA, 0), 5, 0x2604);
        good(prout(&d, N1, 2, 3, 0xAA, 0));
        good(prout(&d, N1, 1, 6, 0xAA, 0));
        good(run_on(&d, N2, &READ, &[]));
        assert_eq!(write(&d, N2), Status::GOOD);
        let (_, other) = dev();
        let _ = other;
        let n3 = NexusId(3);
        clear_ua(&d, n3);
        assert_eq!(
            run_on(&d, n3, &READ, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        good(prout(&d, N1, 2, 6, 0xAA, 0));
        assert_sense(&run_on(&d, N2, &[0; 6], &[]), 6, 0x2A04);
    }

    #[test]
    fn all_registrants_types() {
        let d = setup();
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N2, 0, 0, 0, 0xBB));
        good(prout(&d, N1, 1, 7, 0xAA, 0));
        assert_eq!(write(&d, N2), Status::GOOD);
        good(prout(&d, N2, 1, 7, 0xBB, 0));
        let r = prin(&d, N1, 1);
        assert_eq!(&r[8..16], &[0; 8]);
        good(prout(&d, N1, 0, 0, 0xAA, 0));
        assert_eq!(write(&d, N2), Status::GOOD);
        let n3 = NexusId(3);
        clear_ua(&d, n3);
        assert_eq!(write(&d, n3), Status::RESERVATION_CONFLICT);
        good(run_on(&d, n3, &READ, &[]));
        good(prout(&d, N2, 0, 0, 0xBB, 0));
        assert_eq!(write(&d, n3), Status::GOOD);
    }

    #[test]
    fn clear_and_preempt() {
        let d = setup();
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N2, 0, 0, 0, 0xBB));
        good(prout(&d, N1, 1, 1, 0xAA, 0));
        good(prout(&d, N2, 4, 3, 0xBB, 0xAA));
        assert_sense(&run_on(&d, N1, &[0; 6], &[]), 6, 0x2A05);
        let k = prin(&d, N2, 0);
        assert_eq!(&k[4..8], &[0, 0, 0, 8]);
        assert_eq!(
            run_on(&d, N1, &READ, &[]).status,
            Status::RESERVATION_CONFLICT
        );
        assert_eq!(
            prout(&d, N2, 4, 3, 0xBB, 0x77).status,
            Status::RESERVATION_CONFLICT
        );
        assert_sense(&prout(&d, N2, 4, 3, 0xBB, 0), 5, 0x2600);
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        good(prout(&d, N1, 4, 3, 0xAA, 0xBB));
        good(prout(&d, N1, 0, 0, 0xAA, 0xAA));
        assert_sense(&run_on(&d, N2, &[0; 6], &[]), 6, 0x2A05);
        good(prout(&d, N2, 0, 0, 0, 0xBB));
        good(prout(&d, N1, 3, 0, 0xAA, 0));
        assert_eq!(&prin(&d, N1, 0)[4..8], &[0; 4]);
        assert_eq!(&prin(&d, N1, 1)[4..8], &[0; 4]);
        assert_sense(&run_on(&d, N2, &[0; 6], &[]), 6, 0x2A03);
        assert_eq!(
            prout(&d, N2, 3, 0, 0xBB, 0).status,
            Status::RESERVATION_CONFLICT
        );
    }

    #[test]
    fn report_capabilities_and_bad_fields() {
        let d = setup();
        assert_eq!(prin(&d, N1, 2), vec![0, 8, 0, 0x80, 0xEA, 0x01, 0, 0]);
        good(prout(&d, N1, 0, 0, 0, 0xAA));
        let fs = prin(&d, N1, 3);
        assert_eq!(&fs[4..8], &[0, 0, 0, 24]);
        assert_invalid_cdb(
            &run_on(&d, N1, &[0x5E, 4, 0, 0, 0, 0, 0, 0, 8, 0], &[]),
            1,
            Some(4),
        );
        assert_invalid_cdb(&prout(&d, N1, 1, 2, 0xAA, 0), 2, Some(3));
        assert_invalid_cdb(&prout(&d, N1, 1, 0x11, 0xAA, 0), 2, Some(7));
        assert_invalid_cdb(&prout(&d, N1, 8, 1, 0xAA, 0), 1, Some(4));
        let r = run_on(&d, N1, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 20, 0], &[0; 20]);
        assert_sense(&r, 5, 0x1A00);
        let mut p = vec![0u8; 24];
        p[20] = 1;
        let r = run_on(&d, N1, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p);
        assert_sense(&r, 5, 0x2600);
    }
}
