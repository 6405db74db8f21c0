//! PERSISTENT RESERVE OUT (SPC-4 6.16): REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT (AND
//! ABORT), REGISTER AND IGNORE EXISTING KEY and REGISTER AND MOVE, and saving the state when
//! APTPL is active.
//!
//! SPEC_I_PT and ALL_TG_PT are not supported (SIP_C and ATP_C are 0). APTPL is accepted when
//! the logical unit has a state store and the transport has named the initiator port.

use crate::cdb::{be16, be32, be64, byte};
use crate::device::State;
use crate::persistent::{pr_type::*, valid_type, Reservation, TARGET_PORT};
use crate::read_write::take_data_out;
use crate::sense::{Asc, CmdError, CmdResult, Sense};
use crate::transport_id::{self, TransportId};
use crate::{Device, NexusId, Request};

/// Service actions.
const SA_REGISTER: u8 = 0x00;
const SA_RESERVE: u8 = 0x01;
const SA_RELEASE: u8 = 0x02;
const SA_CLEAR: u8 = 0x03;
const SA_PREEMPT: u8 = 0x04;
const SA_PREEMPT_AND_ABORT: u8 = 0x05;
const SA_REGISTER_AND_IGNORE: u8 = 0x06;
const SA_REGISTER_AND_MOVE: u8 = 0x07;

/// Decoded PERSISTENT RESERVE OUT parameter list.
struct ProutParams {
    key: u64,
    sa_key: u64,
    aptpl: bool,
    /// REGISTER AND MOVE: the destination and UNREG.
    moving: Option<(TransportId, bool)>,
}

/// The basic 24-byte parameter list of every service action but REGISTER AND MOVE.
fn decode_basic(req: &Request, sa: u8) -> Result<ProutParams, Sense> {
    if be32(req.cdb, 5) != 24 {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let data = take_data_out(req, 24)?;
    let flags = byte(data, 20);
    if flags & 0x08 != 0 {
        // SPEC_I_PT: not supported with REGISTER, invalid with the others.
        return Err(Sense::invalid_param(20, Some(3)));
    }
    let registering = matches!(sa, SA_REGISTER | SA_REGISTER_AND_IGNORE);
    if registering && flags & 0x04 != 0 {
        return Err(Sense::invalid_param(20, Some(2)));
    }
    Ok(ProutParams {
        key: be64(data, 0),
        sa_key: be64(data, 8),
        aptpl: registering && flags & 0x01 != 0,
        moving: None,
    })
}

/// The REGISTER AND MOVE parameter list: keys, UNREG, APTPL, the relative target port (one of
/// the `port_count` ports) and the destination's TransportID.
fn decode_move(req: &Request, port_count: u16) -> Result<ProutParams, Sense> {
    let len = u64::from(be32(req.cdb, 5));
    if len < 24 {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let data = take_data_out(req, len)?;
    let tid_len = u64::from(be32(data, 20));
    if 24 + tid_len > len {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    if !(TARGET_PORT..=port_count).contains(&be16(data, 18)) {
        return Err(Sense::invalid_param(18, None));
    }
    let tid = transport_id::decode(&data[24..24 + tid_len as usize], 24)?;
    Ok(ProutParams {
        key: be64(data, 0),
        sa_key: be64(data, 8),
        aptpl: byte(data, 17) & 0x01 != 0,
        moving: Some((tid, byte(data, 17) & 0x02 != 0)),
    })
}

impl Device {
    /// PERSISTENT RESERVE OUT.
    pub(crate) fn pr_out(&self, req: &Request) -> CmdResult {
        let sa = byte(req.cdb, 1) & 0x1F;
        let scope = byte(req.cdb, 2) >> 4;
        let kind = byte(req.cdb, 2) & 0x0F;
        let p = match sa {
            SA_REGISTER_AND_MOVE => decode_move(req, self.lock().port_count)?,
            _ => decode_basic(req, sa)?,
        };
        let uses_type = matches!(
            sa,
            SA_RESERVE | SA_RELEASE | SA_PREEMPT | SA_PREEMPT_AND_ABORT
        );
        if uses_type && scope != 0 {
            return Err(Sense::invalid_cdb(2, Some(7)).into());
        }
        if uses_type && !valid_type(kind) {
            return Err(Sense::invalid_cdb(2, Some(3)).into());
        }
        let mut st = self.lock();
        let n = req.nexus;
        if p.aptpl && (self.cfg.pr_store.is_none() || !st.names.contains_key(&n)) {
            let at = if sa == SA_REGISTER_AND_MOVE { 17 } else { 20 };
            return Err(Sense::invalid_param(at, Some(0)).into());
        }
        let before = st.pr.clone();
        let result = match sa {
            SA_REGISTER => register(&mut st, n, &p, false),
            SA_REGISTER_AND_IGNORE => register(&mut st, n, &p, true),
            SA_RESERVE => reserve(&mut st, n, &p, kind),
            SA_RELEASE => release(&mut st, n, &p, kind),
            SA_CLEAR => clear(&mut st, n, &p),
            SA_REGISTER_AND_MOVE => register_and_move(&mut st, n, &p),
            _ => preempt(&mut st, n, &p, kind),
        };
        if result.is_ok()
            && matches!(
                sa,
                SA_REGISTER | SA_REGISTER_AND_IGNORE | SA_REGISTER_AND_MOVE
            )
        {
            st.pr.aptpl = p.aptpl;
        }
        result?;
        self.persist(&mut st, before)?;
        Ok(Vec::new())
    }

    /// Saves the state when APTPL is (or was) active and it changed; on failure the state goes
    /// back to `before` and the command fails with the store's error.
    fn persist(&self, st: &mut State, before: crate::persistent::PrState) -> Result<(), Sense> {
        let Some(store) = &self.cfg.pr_store else {
            return Ok(());
        };
        if !(st.pr.aptpl || before.aptpl) || st.pr == before {
            return Ok(());
        }
        let snapshot = st.pr.snapshot();
        if let Err(e) = store.0.save(&snapshot.encode()) {
            st.pr = before;
            return Err(Sense::from_io(&e, true));
        }
        Ok(())
    }
}

fn check_key(st: &State, n: NexusId, p: &ProutParams) -> Result<(), CmdError> {
    match st.pr.key_of(n) {
        Some(k) if k == p.key => Ok(()),
        _ => Err(CmdError::Conflict),
    }
}

fn bump(st: &mut State) {
    st.pr.generation = st.pr.generation.wrapping_add(1);
}

fn register(st: &mut State, n: NexusId, p: &ProutParams, ignore: bool) -> CmdResult {
    match st.pr.key_of(n) {
        None => {
            if !ignore && p.key != 0 {
                return Err(CmdError::Conflict);
            }
            if p.sa_key != 0 {
                let port = st.names.get(&n).cloned();
                st.pr.add(p.sa_key, Some(n), port);
                bump(st);
            }
        }
        Some(k) => {
            if !ignore && k != p.key {
                return Err(CmdError::Conflict);
            }
            if p.sa_key == 0 {
                unregister(st, n);
            } else if let Some(r) = st.pr.regs.iter_mut().find(|r| r.nexus == Some(n)) {
                r.key = p.sa_key;
            }
            bump(st);
        }
    }
    Ok(Vec::new())
}

/// Removes the registration of `n`, releasing a reservation it held.
fn unregister(st: &mut State, n: NexusId) {
    let before = st.pr.reservation;
    st.pr.remove_where(|r| r.nexus != Some(n));
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
        .filter_map(|r| r.nexus)
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
            let holder = st.pr.reg_of(n).map_or(0, |r| r.id);
            st.pr.reservation = Some(Reservation { holder, kind });
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
    bump(st);
    Ok(Vec::new())
}

/// PREEMPT and PREEMPT AND ABORT (commands run to completion, so there are no tasks of the
/// preempted nexuses to abort).
fn preempt(st: &mut State, n: NexusId, p: &ProutParams, kind: u8) -> CmdResult {
    check_key(st, n, p)?;
    let sender = st.pr.reg_of(n).map_or(0, |r| r.id);
    let old = st.pr.reservation;
    let holder_key = old.and_then(|r| st.pr.regs.iter().find(|x| x.id == r.holder).map(|x| x.key));
    let removed = match old {
        Some(r) if r.all_registrants() && p.sa_key == 0 => {
            let removed = st.pr.remove_where(|x| x.nexus == Some(n));
            st.pr.reservation = Some(Reservation {
                holder: sender,
                kind,
            });
            removed
        }
        Some(r) if !r.all_registrants() && holder_key == Some(p.sa_key) => {
            let removed = st
                .pr
                .remove_where(|x| x.key != p.sa_key || x.nexus == Some(n));
            st.pr.reservation = Some(Reservation {
                holder: sender,
                kind,
            });
            if r.kind != kind {
                // The type changed: every remaining registrant but the sender learns of it.
                notify(st, n, Asc::RESERVATIONS_RELEASED);
            }
            removed
        }
        _ => {
            if p.sa_key == 0 {
                return Err(Sense::invalid_param(8, None).into());
            }
            let before = st.pr.regs.len();
            let removed = st.pr.remove_where(|x| x.key != p.sa_key);
            if st.pr.regs.len() == before {
                return Err(CmdError::Conflict);
            }
            st.pr.fix_reservation();
            removed
        }
    };
    for r in removed {
        st.ua.establish(r, Asc::REGISTRATIONS_PREEMPTED);
    }
    bump(st);
    Ok(Vec::new())
}

/// REGISTER AND MOVE (SPC-4 5.14.7.4): registers the I_T nexus the TransportID names with
/// the SERVICE ACTION RESERVATION KEY, makes it the holder of the (not all-registrants)
/// reservation the sender holds, and with UNREG unregisters the sender.
fn register_and_move(st: &mut State, n: NexusId, p: &ProutParams) -> CmdResult {
    let Some((tid, unreg)) = &p.moving else {
        return Err(CmdError::Conflict);
    };
    check_key(st, n, p)?;
    match st.pr.reservation {
        Some(r) if !r.all_registrants() && st.pr.is_holder(n) => {}
        _ => return Err(CmdError::Conflict),
    }
    if p.sa_key == 0 {
        return Err(Sense::invalid_param(8, None).into());
    }
    let (port, dest) = destination(st, tid)?;
    let sender_port = st.names.get(&n);
    if dest == Some(n) || sender_port == Some(&port) {
        return Err(Sense::invalid_param(24, None).into());
    }
    let existing =
        st.pr.regs.iter_mut().find(|r| {
            r.port.as_deref() == Some(port.as_str()) || (dest.is_some() && r.nexus == dest)
        });
    let id = match existing {
        Some(r) => {
            r.key = p.sa_key;
            r.port = Some(port);
            r.nexus = r.nexus.or(dest);
            r.id
        }
        None => st.pr.add(p.sa_key, dest, Some(port)),
    };
    if let Some(r) = st.pr.reservation.as_mut() {
        r.holder = id;
    }
    if *unreg {
        st.pr.remove_where(|r| r.nexus != Some(n));
    }
    bump(st);
    Ok(Vec::new())
}

/// The initiator port a TransportID names, and its nexus when it has logged in. A name-only
/// TransportID must match exactly one known port.
fn destination(st: &State, tid: &TransportId) -> Result<(String, Option<NexusId>), Sense> {
    let invalid = Sense::invalid_param(28, None);
    let mut known: Vec<(String, Option<NexusId>)> = st
        .names
        .iter()
        .filter(|(_, port)| tid.matches(port))
        .map(|(n, port)| (port.clone(), Some(*n)))
        .collect();
    for r in &st.pr.regs {
        if let Some(port) = r.port.as_ref().filter(|p| tid.matches(p)) {
            if !known.iter().any(|(p, _)| p == port) {
                known.push((port.clone(), r.nexus));
            }
        }
    }
    match (tid, known.len()) {
        (_, 1) => Ok(known.remove(0)),
        (TransportId::Port(port), 0) => Ok((port.clone(), None)),
        _ => Err(invalid),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::pr_persist::tests::MemPrStore;
    use crate::pr_persist::{PrPersistence, PrSnapshot};
    use crate::testutil::*;
    use crate::{Device, NexusId, Response, Status};

    const PORT1: &str = "iqn.2000-01.com.example:a,i,0x400000000001";
    const PORT2: &str = "iqn.2000-01.com.example:b,i,0x400000000002";

    fn basic(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
        let mut p = key.to_be_bytes().to_vec();
        p.extend_from_slice(&sa_key.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, flags, 0, 0, 0]);
        p
    }

    fn prout(d: &Device, n: NexusId, sa: u8, kind: u8, p: &[u8]) -> Response {
        let len = p.len() as u32;
        let mut cdb = [0x5F, sa, kind, 0, 0, 0, 0, 0, 0, 0];
        cdb[5..9].copy_from_slice(&len.to_be_bytes());
        run_on(d, n, &cdb, p)
    }

    fn prin(d: &Device, n: NexusId, sa: u8) -> Vec<u8> {
        good(run_on(d, n, &[0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0, 0], &[]))
    }

    /// REGISTER AND MOVE parameters naming `text` (format 01b if it has an ISID).
    fn move_params(key: u64, sa_key: u64, flags: u8, text: &str) -> Vec<u8> {
        let mut p = key.to_be_bytes().to_vec();
        p.extend_from_slice(&sa_key.to_be_bytes());
        p.extend_from_slice(&[0, flags, 0, 1]);
        let format = u8::from(text.contains(",i,0x"));
        let mut name = text.as_bytes().to_vec();
        name.push(0);
        name.resize(name.len().max(20).div_ceil(4) * 4, 0);
        let mut tid = vec![(format << 6) | 5, 0];
        tid.extend_from_slice(&(name.len() as u16).to_be_bytes());
        tid.extend(name);
        p.extend_from_slice(&(tid.len() as u32).to_be_bytes());
        p.extend(tid);
        p
    }

    fn named(store: Option<Arc<MemPrStore>>) -> Device {
        let (_, d) = dev_with(64, 512, |c| {
            c.pr_store = store.map(|s| PrPersistence(s as Arc<dyn crate::pr_persist::PrStore>));
        });
        d.name_nexus(N1, PORT1);
        d.name_nexus(N2, PORT2);
        clear_ua(&d, N1);
        clear_ua(&d, N2);
        d
    }

    fn write(d: &Device, n: NexusId) -> Status {
        run_on(d, n, &cdb10(0x2A, 0, 0, 1), &[0; 512]).status
    }

    #[test]
    fn register_and_move_to_a_logged_in_port() {
        let d = named(None);
        good(prout(&d, N1, 0, 0, &basic(0, 0xA1, 0)));
        good(prout(&d, N1, 1, 3, &basic(0xA1, 0, 0)));
        assert_eq!(write(&d, N2), Status::RESERVATION_CONFLICT);
        good(prout(&d, N1, 7, 0, &move_params(0xA1, 0xB2, 0, PORT2)));
        assert_eq!(write(&d, N2), Status::GOOD);
        assert_eq!(write(&d, N1), Status::RESERVATION_CONFLICT);
        let r = prin(&d, N1, 1);
        assert_eq!(&r[..4], &[0, 0, 0, 2]);
        assert_eq!(&r[8..16], &0xB2u64.to_be_bytes());
        assert_eq!(r[21], 3);
        // Without UNREG the sender stays registered.
        let k = prin(&d, N1, 0);
        assert_eq!(&k[4..8], &[0, 0, 0, 16]);
        // The new holder moves it back by name only, unregistering itself.
        let name1 = PORT1.split(",i,").next().unwrap();
        good(prout(&d, N2, 7, 0, &move_params(0xB2, 0xA3, 2, name1)));
        assert_eq!(
            &prin(&d, N1, 0)[4..16],
            &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0xA3]
        );
        assert_eq!(write(&d, N1), Status::GOOD);
    }

    #[test]
    fn register_and_move_errors() {
        let d = named(None);
        good(prout(&d, N1, 0, 0, &basic(0, 0xA1, 0)));
        good(prout(&d, N2, 0, 0, &basic(0, 0xB1, 0)));
        // No reservation, not the holder, wrong key: RESERVATION CONFLICT.
        let mv = |k, sa_k, to: &str| move_params(k, sa_k, 0, to);
        assert_eq!(
            prout(&d, N1, 7, 0, &mv(0xA1, 5, PORT2)).status,
            Status::RESERVATION_CONFLICT
        );
        good(prout(&d, N1, 1, 1, &basic(0xA1, 0, 0)));
        assert_eq!(
            prout(&d, N2, 7, 0, &mv(0xB1, 5, PORT1)).status,
            Status::RESERVATION_CONFLICT
        );
        assert_eq!(
            prout(&d, N1, 7, 0, &mv(0xA2, 5, PORT2)).status,
            Status::RESERVATION_CONFLICT
        );
        // Zero key, moving to itself, bad target port, truncated TransportID.
        assert_sense(&prout(&d, N1, 7, 0, &mv(0xA1, 0, PORT2)), 5, 0x2600);
        assert_sense(&prout(&d, N1, 7, 0, &mv(0xA1, 5, PORT1)), 5, 0x2600);
        let mut p = mv(0xA1, 5, PORT2);
        p[19] = 2;
        assert_sense(&prout(&d, N1, 7, 0, &p), 5, 0x2600);
        let p = mv(0xA1, 5, PORT2);
        assert_sense(&prout(&d, N1, 7, 0, &p[..p.len() - 4]), 5, 0x1A00);
        assert_sense(&prout(&d, N1, 7, 0, &p[..20]), 5, 0x1A00);
        // All-registrants reservations cannot be moved.
        good(prout(&d, N1, 2, 1, &basic(0xA1, 0, 0)));
        good(prout(&d, N1, 1, 7, &basic(0xA1, 0, 0)));
        assert_eq!(
            prout(&d, N1, 7, 0, &mv(0xA1, 5, PORT2)).status,
            Status::RESERVATION_CONFLICT
        );
    }

    #[test]
    fn register_and_move_to_a_port_not_logged_in() {
        let d = named(None);
        good(prout(&d, N1, 0, 0, &basic(0, 0xA1, 0)));
        good(prout(&d, N1, 1, 1, &basic(0xA1, 0, 0)));
        let later = "iqn.2000-01.com.example:c,i,0x400000000003";
        good(prout(&d, N1, 7, 0, &move_params(0xA1, 0xC1, 2, later)));
        assert_eq!(write(&d, N1), Status::RESERVATION_CONFLICT);
        let fs = prin(&d, N1, 3);
        assert_eq!(&fs[8..16], &0xC1u64.to_be_bytes());
        assert_eq!(fs[20], 1);
        assert_eq!(&fs[26..28], &[0, 1]);
        assert_eq!(&fs[28..36], &[0, 0, 0, 48, 0x45, 0, 0, 44]);
        assert_eq!(&fs[36..36 + later.len()], later.as_bytes());
        let n3 = NexusId(3);
        d.name_nexus(n3, later);
        clear_ua(&d, n3);
        assert_eq!(write(&d, n3), Status::GOOD);
        // A name-only TransportID matching no known port is refused.
        assert_sense(
            &prout(&d, n3, 7, 0, &move_params(0xC1, 1, 0, "iqn.nobody")),
            5,
            0x2600,
        );
    }

    #[test]
    fn parameter_bits() {
        let d = named(None);
        assert_sense(&prout(&d, N1, 0, 0, &basic(0, 1, 0x08)), 5, 0x2600);
        assert_sense(&prout(&d, N1, 0, 0, &basic(0, 1, 0x04)), 5, 0x2600);
        // APTPL without a state store is not supported.
        let r = prout(&d, N1, 0, 0, &basic(0, 1, 0x01));
        assert_sense(&r, 5, 0x2600);
        assert_eq!(&r.sense[15..18], &[0x88, 0, 20]);
        good(prout(&d, N1, 0, 0, &basic(0, 1, 0)));
        // ALL_TG_PT and APTPL are ignored by RESERVE; SPEC_I_PT is not.
        good(prout(&d, N1, 1, 1, &basic(1, 0, 0x05)));
        assert_sense(&prout(&d, N1, 2, 1, &basic(1, 0, 0x08)), 5, 0x2600);
        assert_eq!(prin(&d, N1, 2), vec![0, 8, 0, 0x80, 0xEA, 0x01, 0, 0]);
    }

    #[test]
    fn aptpl_saves_and_restores() {
        let store = Arc::new(MemPrStore::default());
        let d = named(Some(store.clone()));
        assert_eq!(prin(&d, N1, 2)[2..4], [0x01, 0x80]);
        // Without APTPL nothing is saved.
        good(prout(&d, N2, 0, 0, &basic(0, 0xB1, 0)));
        assert_eq!(*store.saves.lock().unwrap(), 0);
        good(prout(&d, N1, 0, 0, &basic(0, 0xA1, 0x01)));
        good(prout(&d, N1, 1, 3, &basic(0xA1, 0, 0)));
        assert_eq!(prin(&d, N1, 2)[2..4], [0x01, 0x81]);
        assert_eq!(*store.saves.lock().unwrap(), 2);
        let saved = PrSnapshot::decode(&store.data.lock().unwrap().clone().unwrap()).unwrap();
        assert_eq!(saved.regs, vec![(0xB1, PORT2.into()), (0xA1, PORT1.into())]);
        assert_eq!(saved.reservation, Some((Some(1), 3)));
        // "Power loss": a new device over the same store.
        let (_, again) = dev_with(64, 512, |c| {
            c.pr_store = Some(PrPersistence(store.clone()));
        });
        let n5 = NexusId(5);
        clear_ua(&again, n5);
        assert_eq!(write(&again, n5), Status::RESERVATION_CONFLICT);
        again.name_nexus(NexusId(7), PORT1);
        clear_ua(&again, NexusId(7));
        assert_eq!(write(&again, NexusId(7)), Status::GOOD);
        assert_eq!(&prin(&again, n5, 0)[..8], &[0, 0, 0, 2, 0, 0, 0, 16]);
        // A failed save leaves the state as it was.
        *store.fail.lock().unwrap() = true;
        let r = prout(&again, NexusId(7), 2, 3, &basic(0xA1, 0, 0));
        assert_sense(&r, 7, 0x2707);
        assert_eq!(prin(&again, n5, 1)[21], 3);
        *store.fail.lock().unwrap() = false;
        // Registering with APTPL 0 turns persistence off (saved once more, then never).
        good(prout(&again, NexusId(7), 0, 0, &basic(0xA1, 0xA2, 0)));
        let saved = PrSnapshot::decode(&store.data.lock().unwrap().clone().unwrap()).unwrap();
        assert!(!saved.aptpl);
        let saves = *store.saves.lock().unwrap();
        good(prout(&again, NexusId(7), 2, 3, &basic(0xA2, 0, 0)));
        assert_eq!(*store.saves.lock().unwrap(), saves);
    }

    #[test]
    fn aptpl_needs_a_named_nexus() {
        let store = Arc::new(MemPrStore::default());
        let (_, d) = dev_with(64, 512, |c| c.pr_store = Some(PrPersistence(store)));
        clear_ua(&d, N1);
        assert_sense(&prout(&d, N1, 0, 0, &basic(0, 1, 0x01)), 5, 0x2600);
        good(prout(&d, N1, 0, 0, &basic(0, 1, 0)));
    }

    #[test]
    fn preempt_with_a_new_type_tells_the_others() {
        let d = named(None);
        let n3 = NexusId(3);
        clear_ua(&d, n3);
        good(prout(&d, N1, 0, 0, &basic(0, 0xA1, 0)));
        good(prout(&d, N2, 0, 0, &basic(0, 0xB1, 0)));
        good(prout(&d, n3, 0, 0, &basic(0, 0xC1, 0)));
        good(prout(&d, N1, 1, 1, &basic(0xA1, 0, 0)));
        good(prout(&d, N2, 4, 3, &basic(0xB1, 0xA1, 0)));
        assert_sense(&run_on(&d, N1, &[0; 6], &[]), 6, 0x2A05);
        assert_sense(&run_on(&d, n3, &[0; 6], &[]), 6, 0x2A04);
        assert_eq!(prin(&d, N2, 1)[21], 3);
    }
}
