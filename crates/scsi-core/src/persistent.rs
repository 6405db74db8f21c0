//! PERSISTENT RESERVE IN / OUT (SPC-4 5.12, 6.15, 6.16): registrations, the six reservation
//! types, release, clear and preempt. Registrations are kept in memory (APTPL is not
//! supported).

use crate::cdb::{be16, be32, be64, byte, clip};
use crate::device::State;
use crate::opcodes::Access;
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdError, CmdResult, Sense};
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

/// The persistent reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// Holder; for the all-registrants types every registrant holds it.
    pub holder: NexusId,
    pub kind: u8,
}

impl Reservation {
    fn all_registrants(&self) -> bool {
        matches!(self.kind, WRITE_EXCLUSIVE_AR | EXCLUSIVE_ACCESS_AR)
    }
}

/// Registrations and the reservation of one logical unit.
#[derive(Debug, Default)]
pub struct PrState {
    /// (nexus, key), in registration order.
    pub regs: Vec<(NexusId, u64)>,
    pub generation: u32,
    pub reservation: Option<Reservation>,
}

impl PrState {
    /// Any registration or reservation exists.
    pub fn active(&self) -> bool {
        !self.regs.is_empty() || self.reservation.is_some()
    }

    /// The key registered by `nexus`.
    pub fn key_of(&self, nexus: NexusId) -> Option<u64> {
        self.regs.iter().find(|r| r.0 == nexus).map(|r| r.1)
    }

    /// Whether `nexus` holds the reservation.
    pub fn is_holder(&self, nexus: NexusId) -> bool {
        match self.reservation {
            Some(r) if r.all_registrants() => self.key_of(nexus).is_some(),
            Some(r) => r.holder == nexus,
            None => false,
        }
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

    fn remove_where(&mut self, keep: impl Fn(&(NexusId, u64)) -> bool) -> Vec<NexusId> {
        let removed = self.regs.iter().filter(|r| !keep(r)).map(|r| r.0).collect();
        self.regs.retain(keep);
        removed
    }

    /// Drops the reservation if its holder is no longer registered.
    fn fix_reservation(&mut self) {
        if let Some(r) = self.reservation {
            let gone = if r.all_registrants() {
                self.regs.is_empty()
            } else {
                self.key_of(r.holder).is_none()
            };
            if gone {
                self.reservation = None;
            }
        }
    }
}

fn valid_type(t: u8) -> bool {
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

/// Decoded PERSISTENT RESERVE OUT parameter list.
struct ProutParams {
    key: u64,
    sa_key: u64,
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
                for (_, k) in &pr.regs {
                    d.extend_from_slice(&k.to_be_bytes());
                }
            }
            0x01 => match pr.reservation {
                Some(r) => {
                    d.extend_from_slice(&16u32.to_be_bytes());
                    let key = if r.all_registrants() {
                        0
                    } else {
                        pr.key_of(r.holder).unwrap_or(0)
                    };
                    d.extend_from_slice(&key.to_be_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0, r.kind, 0, 0]);
                }
                None => d.extend_from_slice(&[0; 4]),
            },
            0x02 => {
                // Length 8; TMV with all six types; ALLOW COMMANDS 0.
                d = vec![0, 8, 0, 0x80, 0xEA, 0x01, 0, 0];
            }
            _ => d = self.pr_full_status(pr),
        }
        Ok(clip(d, alloc))
    }

    /// READ FULL STATUS: one descriptor per registration, without a TransportID (the device
    /// model does not know initiator port names).
    fn pr_full_status(&self, pr: &PrState) -> Vec<u8> {
        let mut d = pr.generation.to_be_bytes().to_vec();
        d.extend_from_slice(&((pr.regs.len() * 24) as u32).to_be_bytes());
        for (n, k) in &pr.regs {
            d.extend_from_slice(&k.to_be_bytes());
            d.extend_from_slice(&[0; 4]);
            let holder = pr.is_holder(*n);
            d.push(u8::from(holder));
            d.push(if holder {
                pr.reservation.map_or(0, |r| r.kind)
            } else {
                0
            });
            d.extend_from_slice(&[0; 4]);
            d.extend_from_slice(&1u16.to_be_bytes());
            d.extend_from_slice(&0u32.to_be_bytes());
        }
        d
    }

    /// PERSISTENT RESERVE OUT: REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT (AND ABORT),
    /// REGISTER AND IGNORE EXISTING KEY.
    pub(crate) fn pr_out(&self, req: &Request) -> CmdResult {
        let sa = byte(req.cdb, 1) & 0x1F;
        let scope = byte(req.cdb, 2) >> 4;
        let kind = byte(req.cdb, 2) & 0x0F;
        let len = be32(req.cdb, 5);
        if len != 24 {
            return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR).into());
        }
        let data = take_data_out(req, 24)?;
        if byte(data, 20) & 0x0D != 0 {
            // SPEC_I_PT, ALL_TG_PT and APTPL are not supported.
            let bit = 7 - (byte(data, 20) & 0x0D).leading_zeros() as u8;
            return Err(Sense::invalid_param(20, Some(bit)).into());
        }
        let p = ProutParams {
            key: be64(data, 0),
            sa_key: be64(data, 8),
        };
        let uses_type = matches!(sa, 0x01 | 0x02 | 0x04 | 0x05);
        if uses_type && scope != 0 {
            return Err(Sense::invalid_cdb(2, Some(7)).into());
        }
        if uses_type && !valid_type(kind) {
            return Err(Sense::invalid_cdb(2, Some(3)).into());
        }
        let mut st = self.lock();
        let n = req.nexus;
        match sa {
            0x00 => register(&mut st, n, &p, false),
            0x06 => register(&mut st, n, &p, true),
            0x01 => reserve(&mut st, n, &p, kind),
            0x02 => release(&mut st, n, &p, kind),
            0x03 => clear(&mut st, n, &p),
            _ => preempt(&mut st, n, &p, kind),
        }
    }
}

fn check_key(st: &State, n: NexusId, p: &ProutParams) -> Result<(), CmdError> {
    match st.pr.key_of(n) {
        Some(k) if k == p.key => Ok(()),
        _ => Err(CmdError::Conflict),
    }
}

fn register(st: &mut State, n: NexusId, p: &ProutParams, ignore: bool) -> CmdResult {
    match st.pr.key_of(n) {
        None => {
            if !ignore && p.key != 0 {
                return Err(CmdError::Conflict);
            }
            if p.sa_key != 0 {
                st.pr.regs.push((n, p.sa_key));
                st.pr.generation = st.pr.generation.wrapping_add(1);
            }
        }
        Some(k) => {
            if !ignore && k != p.key {
                return Err(CmdError::Conflict);
            }
            if p.sa_key == 0 {
                unregister(st, n);
            } else if let Some(r) = st.pr.regs.iter_mut().find(|r| r.0 == n) {
                r.1 = p.sa_key;
            }
            st.pr.generation = st.pr.generation.wrapping_add(1);
        }
    }
    Ok(Vec::new())
}

/// Removes the registration of `n`, releasing a reservation it held.
fn unregister(st: &mut State, n: NexusId) {
    let before = st.pr.reservation;
    st.pr.remove_where(|r| r.0 != n);
    st.pr.fix_reservation();
    if let (Some(r), None) = (before, st.pr.reservation) {
        if matches!(r.kind, WRITE_EXCLUSIVE_RO | EXCLUSIVE_ACCESS_RO) {
            notify(st, n, Asc::RESERVATIONS_RELEASED);
        }
    }
}

/// Establishes `asc` for every registrant but `except`.
fn notify(st: &mut State, except: NexusId, asc: Asc) {
    let targets: Vec<NexusId> = st
        .pr
        .regs
        .iter()
        .map(|r| r.0)
        .filter(|x| *x != except)
        .collect();
    for t in targets {
        st.ua.establish(t, asc);
    }
}

fn reserve(st: &mut State, n: NexusId, p: &ProutParams, kind: u8) -> CmdResult {
    check_key(st, n, p)?;
    match st.pr.reservation {
        None => {
            st.pr.reservation = Some(Reservation { holder: n, kind });
            Ok(Vec::new())
        }
        Some(r) if st.pr.is_holder(n) && r.kind == kind => Ok(Vec::new()),
        Some(_) => Err(CmdError::Conflict),
    }
}

fn release(st: &mut State, n: NexusId, p: &ProutParams, kind: u8) -> CmdResult {
    check_key(st, n, p)?;
    let Some(r) = st.pr.reservation else {
        return Ok(Vec::new());
    };
    if !st.pr.is_holder(n) {
        return Ok(Vec::new());
    }
    if r.kind != kind {
        return Err(Sense::illegal(Asc::INVALID_RELEASE_OF_PR).into());
    }
    st.pr.reservation = None;
    if !matches!(r.kind, WRITE_EXCLUSIVE | EXCLUSIVE_ACCESS) {
        notify(st, n, Asc::RESERVATIONS_RELEASED);
    }
    Ok(Vec::new())
}

fn clear(st: &mut State, n: NexusId, p: &ProutParams) -> CmdResult {
    check_key(st, n, p)?;
    notify(st, n, Asc::RESERVATIONS_PREEMPTED);
    st.pr.regs.clear();
    st.pr.reservation = None;
    st.pr.generation = st.pr.generation.wrapping_add(1);
    Ok(Vec::new())
}

fn preempt(st: &mut State, n: NexusId, p: &ProutParams, kind: u8) -> CmdResult {
    check_key(st, n, p)?;
    let removed = match st.pr.reservation {
        Some(r) if r.all_registrants() && p.sa_key == 0 => {
            let removed = st.pr.remove_where(|x| x.0 == n);
            st.pr.reservation = Some(Reservation { holder: n, kind });
            removed
        }
        Some(r) if !r.all_registrants() && st.pr.key_of(r.holder) == Some(p.sa_key) => {
            let removed = st.pr.remove_where(|x| x.1 != p.sa_key || x.0 == n);
            st.pr.reservation = Some(Reservation { holder: n, kind });
            removed
        }
        _ => {
            if p.sa_key == 0 {
                return Err(Sense::invalid_param(8, None).into());
            }
            let removed = st.pr.remove_where(|x| x.1 != p.sa_key);
            if removed.is_empty() {
                return Err(CmdError::Conflict);
            }
            st.pr.fix_reservation();
            removed
        }
    };
    for r in removed {
        st.ua.establish(r, Asc::REGISTRATIONS_PREEMPTED);
    }
    st.pr.generation = st.pr.generation.wrapping_add(1);
    Ok(Vec::new())
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
        assert_invalid_cdb(&prout(&d, N1, 7, 1, 0xAA, 0), 1, Some(4));
        let r = run_on(&d, N1, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 20, 0], &[0; 20]);
        assert_sense(&r, 5, 0x1A00);
        let mut p = vec![0u8; 24];
        p[20] = 1;
        let r = run_on(&d, N1, &[0x5F, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p);
        assert_sense(&r, 5, 0x2600);
    }
}
