//! Session task table: every SCSI task from its command PDU until its
//! response, indexed by [`TaskId`] and by Initiator Task Tag.

use std::collections::{HashMap, VecDeque};

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
    /// Write data budget held (bytes), released when the task is removed.
    pub reserved: u64,
    /// A write admitted to the data budget (tasks without write data need no admission).
    pub admitted: bool,
    /// A write refused for its length: unsolicited data is checked and dropped, then the
    /// task ends with CHECK CONDITION.
    pub refused: bool,
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
    /// Write data budget held by all tasks.
    reserved: u64,
    /// Writes waiting for admission to the data budget, in arrival order (ids of tasks that
    /// were removed meanwhile are skipped).
    waiting: VecDeque<TaskId>,
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
        self.reserved = self.reserved.saturating_sub(t.reserved);
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

    /// Every task, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &TaskState> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Write data budget held by all tasks.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Hold `bytes` of the data budget for task `id` and mark it admitted.
    pub fn admit(&mut self, id: TaskId, bytes: u64) {
        if let Some(t) = self.by_id.get_mut(&id) {
            t.admitted = true;
            t.reserved += bytes;
            self.reserved += bytes;
        }
    }

    /// Queue a write for admission.
    pub fn wait_for_budget(&mut self, id: TaskId) {
        self.waiting.push_back(id);
    }

    /// The write first in line for admission, forgetting ids of tasks no longer waiting.
    pub fn next_waiting(&mut self) -> Option<TaskId> {
        while let Some(&id) = self.waiting.front() {
            if self.by_id.get(&id).is_some_and(|t| !t.admitted) {
                return Some(id);
            }
            self.waiting.pop_front();
        }
        None
    }

    /// Take the write first in line out of the queue.
    pub fn pop_waiting(&mut self) {
        self.waiting.pop_front();
    }

    pub fn any_executing(&self) -> bool {
        self.by_id.values().any(|t| t.phase == TaskPhase::Executing)
    }
}
