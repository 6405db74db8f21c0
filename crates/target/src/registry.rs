//! State shared by every event loop: live sessions (for reinstatement by ISID), I_T nexus
//! identities, TSIH and connection-id allocation, the access policy and the LUN table each
//! initiator sees, the session limit and the order of session reinstatement. Touched at login
//! and logout only, never per command.
//!
//! Reinstatement: a new session with the key of a live one tells the old one's loop to close
//! it, and waits (holding its final Login Response and reading nothing) until the old
//! connection is gone, which is only once no command of it is left at a store. So no write of
//! the old session can land after a write of the new one.
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use iscsi_proto::{login_status, AccessPolicy, SessionInfo};
use scsi_core::{LunTable, NexusId};

use crate::stats::Gauges;
use crate::worker::{Msg, WorkerHandle};
use crate::ExportedTarget;

/// What identifies a session for reinstatement: initiator name, ISID and target name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: String,
    /// The same initiator port may hold one session per target portal group.
    pub tpgt: u16,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    worker: usize,
    conn_id: u64,
}

pub struct Registry {
    targets: Arc<Vec<ExportedTarget>>,
    workers: Mutex<Vec<WorkerHandle>>,
    sessions: Mutex<HashMap<SessionKey, Slot>>,
    nexuses: Mutex<HashMap<(String, String, u16), NexusId>>,
    next_tsih: AtomicU16,
    next_conn: AtomicU64,
    access: Option<Arc<dyn AccessPolicy>>,
    /// LUN tables of single initiators, by (target, initiator), both lowercase.
    initiator_luns: HashMap<(String, String), Arc<LunTable>>,
    max_sessions: usize,
    /// TSIHs of the admitted sessions (normal and discovery) whose connection is alive.
    admitted: Mutex<HashSet<u16>>,
    /// Old connection id -> the new connection waiting for it to be gone (reinstatement).
    waiters: Mutex<HashMap<u64, Slot>>,
    gauges: Arc<Gauges>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    pub fn new(targets: Arc<Vec<ExportedTarget>>) -> Self {
        Registry {
            targets,
            workers: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
            nexuses: Mutex::new(HashMap::new()),
            next_tsih: AtomicU16::new(1),
            next_conn: AtomicU64::new(1),
            access: None,
            initiator_luns: HashMap::new(),
            max_sessions: usize::MAX,
            admitted: Mutex::new(HashSet::new()),
            waiters: Mutex::new(HashMap::new()),
            gauges: Arc::default(),
        }
    }

    /// Sets the session limit and the gauges the session count is published in.
    pub fn with_limits(mut self, max_sessions: usize, gauges: Arc<Gauges>) -> Self {
        self.max_sessions = max_sessions;
        self.gauges = gauges;
        self
    }

    /// The session limit: may this login complete? A reinstatement always may.
    pub fn admit_session(&self, info: &SessionInfo) -> Result<(), u16> {
        let sessions = lock(&self.sessions);
        let reinstating = key_of(info).is_some_and(|k| sessions.contains_key(&k));
        let mut admitted = lock(&self.admitted);
        if !reinstating && admitted.len() >= self.max_sessions {
            log::warn!(
                "login of {} refused: {} sessions (the limit)",
                info.initiator_name,
                admitted.len()
            );
            return Err(login_status::OUT_OF_RESOURCES);
        }
        admitted.insert(info.tsih);
        self.gauges.set_sessions(admitted.len() as u64);
        Ok(())
    }

    /// The connection that was given `tsih` is gone: its session, if admitted, no longer
    /// counts.
    pub fn release_session(&self, tsih: u16) {
        let mut admitted = lock(&self.admitted);
        if admitted.remove(&tsih) {
            self.gauges.set_sessions(admitted.len() as u64);
        }
    }

    /// Sets the access policy and the LUN tables of single initiators (see
    /// [`crate::Server::set_access`] and [`crate::Server::set_initiator_luns`]).
    pub fn with_access(
        mut self,
        access: Option<Arc<dyn AccessPolicy>>,
        initiator_luns: HashMap<(String, String), Arc<LunTable>>,
    ) -> Self {
        self.access = access;
        self.initiator_luns = initiator_luns;
        self
    }

    /// The access policy logins are checked against; `None`: every login is open.
    pub fn access(&self) -> Option<&Arc<dyn AccessPolicy>> {
        self.access.as_ref()
    }

    pub fn add_worker(&self, handle: WorkerHandle) {
        lock(&self.workers).push(handle);
    }

    /// Sends `msg` to event loop `worker` (from any thread).
    pub fn send_to(&self, worker: usize, msg: Msg) {
        if let Some(w) = lock(&self.workers).get(worker) {
            w.send(msg);
        }
    }

    /// A fresh, nonzero TSIH.
    pub fn alloc_tsih(&self) -> u16 {
        loop {
            let t = self.next_tsih.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }

    pub fn alloc_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// The LUN table `initiator` sees on `target`: its own when it has one, else the target's.
    pub fn lun_table(&self, target: &str, initiator: &str) -> Option<Arc<LunTable>> {
        let key = (target.to_ascii_lowercase(), initiator.to_ascii_lowercase());
        if let Some(own) = self.initiator_luns.get(&key) {
            return Some(own.clone());
        }
        self.targets
            .iter()
            .find(|t| t.iqn.eq_ignore_ascii_case(target))
            .map(|t| t.luns.clone())
    }

    /// The I_T nexus of an initiator port (name + ISID) and a target port (the target and
    /// the portal group tag `tpgt`).
    pub fn nexus(&self, initiator: &str, isid: &[u8; 6], target: &str, tpgt: u16) -> NexusId {
        let port = format!("{},i,0x{}", initiator, hex(isid));
        let mut map = lock(&self.nexuses);
        let next = NexusId(map.len() as u64 + 1);
        *map.entry((port, target.to_string(), tpgt)).or_insert(next)
    }

    /// Record a new session; a live session with the same key is told to close
    /// (reinstatement). True when the new session must wait for [`Msg::Released`] before it
    /// sends or reads anything.
    pub fn register(&self, key: SessionKey, worker: usize, conn_id: u64) -> bool {
        let mut sessions = lock(&self.sessions);
        let new = Slot { worker, conn_id };
        let Some(old) = sessions.insert(key.clone(), new) else {
            return false;
        };
        if old.conn_id == conn_id {
            return false;
        }
        log::info!(
            "session reinstatement: initiator {} isid 0x{} on {}: closing the old session",
            key.initiator,
            hex(&key.isid),
            key.target
        );
        // Recorded before the sessions lock is released: the old connection's end
        // (`unregister`, then `conn_ended`) cannot miss it.
        lock(&self.waiters).insert(old.conn_id, new);
        if let Some(w) = lock(&self.workers).get(old.worker) {
            w.send(Msg::Kill(old.conn_id));
        }
        true
    }

    /// Connection `conn_id` is gone (after [`Registry::unregister`], with no command left at a
    /// store): release the session waiting for it, or hand that waiter over to the session
    /// this one was itself waiting for.
    pub fn conn_ended(&self, conn_id: u64) {
        let mut waiters = lock(&self.waiters);
        let next = waiters.remove(&conn_id);
        let awaited = waiters
            .iter()
            .find(|(_, w)| w.conn_id == conn_id)
            .map(|(old, _)| *old);
        match (next, awaited) {
            (Some(next), Some(old)) => {
                waiters.insert(old, next);
            }
            (Some(next), None) => {
                if let Some(w) = lock(&self.workers).get(next.worker) {
                    w.send(Msg::Released(next.conn_id));
                }
            }
            (None, Some(old)) => {
                waiters.remove(&old);
            }
            (None, None) => {}
        }
    }

    /// Forget a session if it is still the one registered under `key` by `conn_id`.
    pub fn unregister(&self, key: &SessionKey, conn_id: u64) {
        let mut sessions = lock(&self.sessions);
        if sessions.get(key).is_some_and(|s| s.conn_id == conn_id) {
            sessions.remove(key);
        }
    }
}

/// The reinstatement key of a normal session.
fn key_of(info: &SessionInfo) -> Option<SessionKey> {
    match &info.target_name {
        Some(target) if !info.discovery => Some(SessionKey {
            initiator: info.initiator_name.clone(),
            isid: info.isid,
            target: target.clone(),
            tpgt: info.portal_group_tag,
        }),
        _ => None,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_initiator_with_its_own_table_gets_it_others_the_targets() {
        let shared = Arc::new(LunTable::new(Vec::new()));
        let own = Arc::new(LunTable::new(Vec::new()));
        let targets = vec![ExportedTarget {
            iqn: "iqn.2026-11.io.ustgt:t".into(),
            alias: None,
            luns: shared.clone(),
        }];
        let mut views = HashMap::new();
        views.insert(
            (
                "iqn.2026-11.io.ustgt:t".to_string(),
                "iqn.2026-11.io.x:a".to_string(),
            ),
            own.clone(),
        );
        let r = Registry::new(Arc::new(targets)).with_access(None, views);
        let got = r.lun_table("iqn.2026-11.io.ustgt:t", "IQN.2026-11.io.x:A");
        assert!(Arc::ptr_eq(&got.expect("own table"), &own));
        let got = r.lun_table("iqn.2026-11.io.ustgt:t", "iqn.2026-11.io.x:b");
        assert!(Arc::ptr_eq(&got.expect("target table"), &shared));
        assert!(r
            .lun_table("iqn.2026-11.io.ustgt:other", "iqn.2026-11.io.x:a")
            .is_none());
        assert!(r.access().is_none());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn info(isid: u8, tsih: u16, discovery: bool) -> SessionInfo {
        SessionInfo {
            initiator_name: "iqn.2026-11.io.x:a".into(),
            initiator_alias: None,
            target_name: (!discovery).then(|| "iqn.2026-11.io.ustgt:t".to_string()),
            isid: [0x80, 0, 0, 0, 0, isid],
            tsih,
            discovery,
            portal_group_tag: 1,
        }
    }

    #[test]
    fn one_initiator_port_has_one_session_per_portal_group() {
        let gauges = Arc::new(Gauges::default());
        let r = Registry::new(Arc::new(Vec::new())).with_limits(8, gauges);
        let first = info(1, 0, false);
        let second = SessionInfo {
            portal_group_tag: 2,
            ..info(1, 0, false)
        };
        let (k1, k2) = (
            key_of(&first).expect("normal"),
            key_of(&second).expect("normal"),
        );
        assert_ne!(k1, k2);
        assert!(!r.register(k1.clone(), 0, 100));
        // A login through the second portal group replaces nothing.
        assert!(!r.register(k2, 1, 200));
        // The same portal group again is a reinstatement of the first session.
        assert!(r.register(k1, 0, 300));
    }

    fn key(isid: u8) -> SessionKey {
        let i = info(isid, 0, false);
        key_of(&i).expect("normal session")
    }

    #[test]
    fn sessions_are_counted_until_their_connection_ends_and_reinstatement_passes() {
        let gauges = Arc::new(Gauges::default());
        let r = Registry::new(Arc::new(Vec::new())).with_limits(2, gauges);
        assert_eq!(r.admit_session(&info(1, 10, false)), Ok(()));
        r.register(key(1), 0, 100);
        assert_eq!(
            r.admit_session(&info(0, 11, true)),
            Ok(()),
            "discovery counts"
        );
        assert_eq!(
            r.admit_session(&info(2, 12, false)),
            Err(login_status::OUT_OF_RESOURCES)
        );
        assert_eq!(
            r.admit_session(&info(1, 13, false)),
            Ok(()),
            "reinstatement"
        );
        r.release_session(10);
        r.release_session(11);
        r.release_session(12);
        assert_eq!(
            lock(&r.admitted).len(),
            1,
            "only the reinstated session is left"
        );
        assert_eq!(r.admit_session(&info(2, 14, false)), Ok(()));
    }

    #[test]
    fn a_chain_of_reinstatements_waits_for_the_oldest_connection() {
        let r = Registry::new(Arc::new(Vec::new()));
        assert!(!r.register(key(1), 0, 1), "a new session waits for nothing");
        assert!(r.register(key(1), 0, 2), "2 waits for 1");
        assert!(r.register(key(1), 0, 3), "3 waits for 2");
        // 2 goes first: 3 now waits for 1, which is still there.
        r.unregister(&key(1), 2);
        r.conn_ended(2);
        let w = lock(&r.waiters).clone();
        assert_eq!(w.len(), 1);
        assert_eq!(w.get(&1).map(|s| s.conn_id), Some(3));
        r.unregister(&key(1), 1);
        r.conn_ended(1);
        assert!(lock(&r.waiters).is_empty(), "3 released");
        // A waiting session that goes away forgets its wait.
        assert!(r.register(key(1), 0, 4), "4 waits for 3");
        r.conn_ended(4);
        assert!(lock(&r.waiters).is_empty());
    }
}
