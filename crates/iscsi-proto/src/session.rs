//! Session task table: every SCSI task from its command PDU until its
//! response, indexed by [`TaskId`] and by Initiator Task Tag.

use std::collections::HashMap;

use crate::dataout::WriteXfer;
use crate::types::TaskId;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    /// Waiting for Data-Out.
    Collecting,
    /// Handed to the SCSI layer with `Output::Execute`.
    Executing,
}

/// One SCSI task.
#[derive(Debug)]
pub(crate) struct TaskState {
    pub id: TaskId,
    pub itt: u32,
    /// Raw 8-byte LUN field.
    pub lun_raw: u64,
    /// LUN index.
    pub lun: u64,
    pub cdb: Vec<u8>,
    pub read: bool,
    pub write: bool,
    pub attr: u8,
    /// Expected Data Transfer Length (the write length for bidirectional commands).
    pub edtl: u32,
    /// Bidirectional Expected Read-Data Length (AHS type 2), when present.
    pub bidi_read_len: Option<u32>,
    pub phase: TaskPhase,
    /// Write data collected so far.
    pub data: Vec<u8>,
    pub xfer: Option<WriteXfer>,
    /// Aborted by a TMF while executing: its result is discarded.
    pub aborted: bool,
}

impl TaskState {
    /// Bytes the initiator expects to read.
    pub fn read_len(&self) -> u32 {
        match self.bidi_read_len {
            Some(n) => n,
            None if self.read && !self.write => self.edtl,
            None => 0,
        }
    }

    /// True for a bidirectional command.
    pub fn bidi(&self) -> bool {
        self.bidi_read_len.is_some()
    }
}

/// All tasks of the session.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    by_id: HashMap<TaskId, TaskState>,
    by_itt: HashMap<u32, TaskId>,
    next_id: u32,
}

impl Tasks {
    /// A fresh task id.
    pub fn alloc_id(&mut self) -> TaskId {
        let id = TaskId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    pub fn insert(&mut self, t: TaskState) {
        self.by_itt.insert(t.itt, t.id);
        self.by_id.insert(t.id, t);
    }

    pub fn itt_in_use(&self, itt: u32) -> bool {
        self.by_itt.contains_key(&itt)
    }

    pub fn id_of_itt(&self, itt: u32) -> Option<TaskId> {
        self.by_itt.get(&itt).copied()
    }

    pub fn get_mut(&mut self, id: TaskId) -> Option<&mut TaskState> {
        self.by_id.get_mut(&id)
    }

    pub fn get(&self, id: TaskId) -> Option<&TaskState> {
        self.by_id.get(&id)
    }

    pub fn remove(&mut self, id: TaskId) -> Option<TaskState> {
        let t = self.by_id.remove(&id)?;
        if self.by_itt.get(&t.itt) == Some(&id) {
            self.by_itt.remove(&t.itt);
        }
        Some(t)
    }

    /// Forget the ITT of a task (an aborted task still executing: its tag may be reused).
    pub fn release_itt(&mut self, id: TaskId) {
        if let Some(t) = self.by_id.get(&id) {
            if self.by_itt.get(&t.itt) == Some(&id) {
                self.by_itt.remove(&t.itt);
            }
        }
    }

    /// Ids of the tasks matching `pred`, in id order.
    pub fn ids_where(&self, pred: impl Fn(&TaskState) -> bool) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self
            .by_id
            .values()
            .filter(|t| pred(t))
            .map(|t| t.id)
            .collect();
        ids.sort();
        ids
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn any_executing(&self) -> bool {
        self.by_id.values().any(|t| t.phase == TaskPhase::Executing)
    }
}
