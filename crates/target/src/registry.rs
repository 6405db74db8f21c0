//! State shared by every event loop: live sessions (for reinstatement by ISID), I_T nexus
//! identities, TSIH and connection-id allocation. Touched at login and logout only, never per
//! command.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use scsi_core::{LunTable, NexusId};

use crate::worker::{Msg, WorkerHandle};
use crate::ExportedTarget;

/// What identifies a session for reinstatement: initiator name, ISID and target name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub initiator: String,
    pub isid: [u8; 6],
    pub target: String,
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
    nexuses: Mutex<HashMap<(String, String), NexusId>>,
    next_tsih: AtomicU16,
    next_conn: AtomicU64,
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
        }
    }

    pub fn add_worker(&self, handle: WorkerHandle) {
        lock(&self.workers).push(handle);
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

    pub fn lun_table(&self, target: &str) -> Option<Arc<LunTable>> {
        self.targets
            .iter()
            .find(|t| t.iqn == target)
            .map(|t| t.luns.clone())
    }

    /// The I_T nexus of an initiator port (name + ISID) and a target.
    pub fn nexus(&self, initiator: &str, isid: &[u8; 6], target: &str) -> NexusId {
        let port = format!("{},i,0x{}", initiator, hex(isid));
        let mut map = lock(&self.nexuses);
        let next = NexusId(map.len() as u64 + 1);
        *map.entry((port, target.to_string())).or_insert(next)
    }

    /// Record a new session; a live session with the same key is told to close (reinstatement).
    pub fn register(&self, key: SessionKey, worker: usize, conn_id: u64) {
        let old = lock(&self.sessions).insert(key.clone(), Slot { worker, conn_id });
        if let Some(old) = old {
            if old.conn_id != conn_id {
                log::info!(
                    "session reinstatement: initiator {} isid 0x{} on {}: closing the old session",
                    key.initiator,
                    hex(&key.isid),
                    key.target
                );
                if let Some(w) = lock(&self.workers).get(old.worker) {
                    w.send(Msg::Kill(old.conn_id));
                }
            }
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

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
