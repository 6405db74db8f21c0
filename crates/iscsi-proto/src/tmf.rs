//! Task management (RFC 7143 11.5, 11.6): ABORT TASK with the RefCmdSN rule,
//! ABORT/CLEAR TASK SET, LOGICAL UNIT RESET, TARGET WARM/COLD RESET; the
//! response waits for aborted running tasks and, where the SCSI layer must
//! act, for `task_mgmt_done`. QUERY TASK and QUERY TASK SET (RFC 7144 4.2,
//! SAM-5 7.9, 7.10) are answered at once from the task table.

use iscsi_wire::{lun_to_index, Bhs, Pdu, TaskMgmtRequest, TaskMgmtResponse};

use crate::cmdsn::sn_lt;
use crate::connection::Connection;
use crate::session::TaskPhase;
use crate::types::{tmf_function as f, tmf_response as r, Output, TaskId, TmfRequest};

/// A TMF whose response is not sent yet.
#[derive(Debug, Clone)]
pub(crate) struct PendingTmf {
    itt: u32,
    /// Aborted tasks still executing.
    waiting_tasks: Vec<TaskId>,
    /// Waiting for `task_mgmt_done`.
    waiting_scsi: bool,
    response: u8,
    close_after: bool,
}

/// The response to QUERY TASK / QUERY TASK SET: FUNCTION SUCCEEDED when the task (a task)
/// exists, FUNCTION COMPLETE when not.
fn query_response(found: bool) -> u8 {
    if found {
        r::FUNCTION_SUCCEEDED
    } else {
        r::FUNCTION_COMPLETE
    }
}

impl Connection {
    /// A TMF request delivered in CmdSN order (or immediate).
    pub(crate) fn tmf_pdu(&mut self, pdu: Pdu) {
        let Bhs::TaskMgmtRequest(req) = &pdu.bhs else {
            return;
        };
        let lun = lun_to_index(req.lun);
        match req.function {
            f::ABORT_TASK => self.abort_task(req),
            f::ABORT_TASK_SET => {
                let ids = self.tasks.ids_where(|t| t.lun == lun && !t.aborted);
                self.start_tmf(req, ids, false, false);
            }
            f::CLEAR_TASK_SET | f::LOGICAL_UNIT_RESET => {
                let ids = self.tasks.ids_where(|t| t.lun == lun && !t.aborted);
                self.start_tmf(req, ids, true, false);
            }
            f::TARGET_WARM_RESET | f::TARGET_COLD_RESET => {
                let ids = self.tasks.ids_where(|t| !t.aborted);
                let cold = req.function == f::TARGET_COLD_RESET;
                self.start_tmf(req, ids, true, cold);
            }
            f::TASK_REASSIGN => self.send_tmf_response(req.itt, r::REASSIGN_NOT_SUPPORTED),
            f::QUERY_TASK => {
                let found = self.task_exists(req.ref_task_tag);
                self.send_tmf_response(req.itt, query_response(found));
            }
            f::QUERY_TASK_SET => {
                let found = self.task_set_busy(req.lun);
                self.send_tmf_response(req.itt, query_response(found));
            }
            f::CLEAR_ACA | f::I_T_NEXUS_RESET | f::QUERY_ASYNC_EVENT => {
                self.send_tmf_response(req.itt, r::NOT_SUPPORTED)
            }
            _ => self.send_tmf_response(req.itt, r::REJECTED),
        }
    }

    /// True while task `id` executes after a task management function aborted it: its result
    /// will be discarded, so a transport that runs it in the background may complete it at
    /// once (the TMF response waits for that).
    pub fn task_aborted(&self, id: TaskId) -> bool {
        self.tasks.get(id).is_some_and(|t| t.aborted)
    }

    /// QUERY TASK: the task with this ITT is in the task set (collecting Data-Out, executing,
    /// or received and held behind a CmdSN gap) and not aborted.
    fn task_exists(&self, itt: u32) -> bool {
        let live = self
            .tasks
            .id_of_itt(itt)
            .and_then(|id| self.tasks.get(id))
            .is_some_and(|t| !t.aborted);
        live || self.window.holds_itt(itt)
    }

    /// QUERY TASK SET: some task of this session (the I_T nexus) for `lun` is in the task
    /// set.
    fn task_set_busy(&self, lun: u64) -> bool {
        let index = lun_to_index(lun);
        !self
            .tasks
            .ids_where(|t| t.lun == index && !t.aborted)
            .is_empty()
            || self.window.holds_where(|p| match &p.bhs {
                Bhs::ScsiCommand(c) => c.lun == lun,
                _ => false,
            })
    }

    /// ABORT TASK, including RFC 7143 11.5.1 for tasks that do not exist.
    fn abort_task(&mut self, req: &TaskMgmtRequest) {
        if let Some(id) = self.tasks.id_of_itt(req.ref_task_tag) {
            self.start_tmf(req, vec![id], false, false);
            return;
        }
        if let Some(sn) = self.window.remove_held_itt(req.ref_task_tag) {
            self.window.consume(sn);
            self.send_tmf_response(req.itt, r::FUNCTION_COMPLETE);
            return;
        }
        if self.window.contains(req.ref_cmd_sn) && sn_lt(req.ref_cmd_sn, req.cmd_sn) {
            // The command never arrived: consider its CmdSN received.
            self.window.consume(req.ref_cmd_sn);
            self.send_tmf_response(req.itt, r::FUNCTION_COMPLETE);
            self.drain_held();
            return;
        }
        self.send_tmf_response(req.itt, r::TASK_DOES_NOT_EXIST);
    }

    /// Abort `ids` and queue the TMF response until they and (with `scsi`) the
    /// SCSI layer are done.
    fn start_tmf(
        &mut self,
        req: &TaskMgmtRequest,
        ids: Vec<TaskId>,
        scsi: bool,
        close_after: bool,
    ) {
        let mut waiting = Vec::new();
        for id in ids {
            let Some(t) = self.tasks.get_mut(id) else {
                continue;
            };
            if t.phase == TaskPhase::Executing {
                t.aborted = true;
                self.tasks.release_itt(id);
                waiting.push(id);
            } else {
                self.tasks.remove(id);
            }
        }
        if req.function != f::ABORT_TASK {
            // Commands held behind a CmdSN gap are affected too.
            let all = matches!(req.function, f::TARGET_WARM_RESET | f::TARGET_COLD_RESET);
            let lun = req.lun;
            self.window.discard_held_where(|p| match &p.bhs {
                Bhs::ScsiCommand(c) => all || c.lun == lun,
                _ => false,
            });
        }
        self.tmfs.push(PendingTmf {
            itt: req.itt,
            waiting_tasks: waiting,
            waiting_scsi: scsi,
            response: r::FUNCTION_COMPLETE,
            close_after,
        });
        if scsi {
            self.push(Output::TaskMgmt(TmfRequest {
                itt: req.itt,
                function: req.function,
                lun: lun_to_index(req.lun),
                ref_task_tag: req.ref_task_tag,
            }));
        }
        self.finish_tmfs();
        self.finish_logout_if_idle();
    }

    /// A task affected by a pending TMF ended.
    pub(crate) fn tmf_task_gone(&mut self, id: TaskId) {
        for t in &mut self.tmfs {
            t.waiting_tasks.retain(|w| *w != id);
        }
        self.finish_tmfs();
    }

    /// The SCSI layer finished its part of a TMF.
    pub(crate) fn tmf_scsi_done(&mut self, itt: u32, response: u8) {
        if let Some(t) = self
            .tmfs
            .iter_mut()
            .find(|t| t.itt == itt && t.waiting_scsi)
        {
            t.waiting_scsi = false;
            t.response = response;
        }
        self.finish_tmfs();
    }

    fn finish_tmfs(&mut self) {
        while let Some(pos) = self
            .tmfs
            .iter()
            .position(|t| t.waiting_tasks.is_empty() && !t.waiting_scsi)
        {
            let t = self.tmfs.remove(pos);
            self.send_tmf_response(t.itt, t.response);
            if t.close_after {
                self.close();
            }
        }
    }

    fn send_tmf_response(&mut self, itt: u32, response: u8) {
        let resp = TaskMgmtResponse {
            response,
            itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
        };
        self.send(resp, Vec::new());
    }
}
