//! Write commands in the `session` harness, as far as the outputs show them: R2T sequences, the
//! connection's write data budget and the Data-Out timeout.
//!
//! - R2T: per task tag, R2TSN counts from 0 with contiguous buffer offsets. A sequence starts
//!   only for a write command fed with that tag and not used by another sequence, where its
//!   immediate or unsolicited data ends, and never reaches past its expected length; a live
//!   task has one sequence. R2Ts out of a completion (a write admitted to the budget the
//!   completed task freed) only start sequences. The expected lengths of the writes soliciting
//!   data at one time fit the write budget (when there are several).
//! - Data-Out timeout: a SCSI Response out of a timer call is CHECK CONDITION, ABORTED COMMAND
//!   / INITIATOR RESPONSE TIMEOUT for the tag of a write command fed, with the timeout on, and
//!   no earlier than the timeout after the last progress the harness saw for that tag (the
//!   first command with the tag, an R2T for it, the end of its previous task).
//! - Tasks ended (handed out with `Output::Execute`, or answered without a completion) never
//!   outnumber the commands fed with their tag: a task ends once.
//!
//! Task management requests may end a task without a word at ErrorRecoveryLevel 0, so an R2T
//! sequence is only trusted while no task management request was fed since it started (nor
//! unanswered when it started).

use std::collections::{BTreeMap, BTreeSet};

use iscsi_proto::Millis;
use iscsi_wire::{R2t, ScsiCommand};

/// Tags at or above this come from raw bytes (see `session::taint`): their commands are
/// unknown to the harness.
const RAW_TAGS: u32 = 0x8000_0000;

/// A write command the harness built, waiting for its R2T sequence.
#[derive(Debug, Clone)]
struct WriteCmd {
    serial: usize,
    itt: u32,
    edtl: u32,
    /// Where its first R2T may start: from the end of its immediate data to the end of its
    /// unsolicited data.
    first: (u32, u32),
    /// An R2T sequence started for it, or it was executed.
    used: bool,
}

/// The R2Ts of one task so far.
#[derive(Debug, Clone)]
struct Seq {
    next_sn: u32,
    next_off: u32,
    /// The largest and smallest expected length of the commands it may belong to.
    edtl: (u32, u32),
    epoch: u32,
    certain: bool,
    /// The completion that started it (0: none).
    completion: u64,
}

impl Seq {
    fn trusted(&self, epoch: u32) -> bool {
        self.certain && self.epoch == epoch
    }
}

/// Task management state when an output is checked.
#[derive(Debug, Clone, Copy)]
pub struct Tmf {
    /// Task management requests fed so far.
    pub epoch: u32,
    /// None of them is unanswered.
    pub settled: bool,
}

/// The write-side model of one session.
#[derive(Debug, Default)]
pub struct Writes {
    cmds: Vec<WriteCmd>,
    seqs: BTreeMap<u32, Seq>,
    /// Per tag: no Data-Out timeout before this time plus the timeout.
    quiet: BTreeMap<u32, Millis>,
    /// Per tag: commands fed and tasks ended.
    fed: BTreeMap<u32, (u32, u32)>,
    /// Tags of write commands fed (with data expected), and of those longer than the budget.
    writes: BTreeSet<u32>,
    too_long: BTreeSet<u32>,
    budget: u64,
    timeout: Millis,
    /// The completion in progress (0: none).
    completion: u64,
    completions: u64,
}

/// Sense key, ASC and ASCQ of the sense data of a SCSI Response (after SenseLength).
pub fn sense_of(data: &[u8]) -> (u8, u8, u8) {
    let s = data.get(2..).unwrap_or(&[]);
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    match at(0) & 0x7f {
        0x72 | 0x73 => (at(1) & 0x0f, at(2), at(3)),
        _ => (at(2) & 0x0f, at(12), at(13)),
    }
}

/// ILLEGAL REQUEST / INVALID FIELD IN CDB: a write longer than the budget.
const REFUSED: (u8, u8, u8) = (0x05, 0x24, 0x00);
/// ABORTED COMMAND / DATA PHASE ERROR: a Data-Out sequence error.
const DATA_PHASE_ERROR: (u8, u8, u8) = (0x0b, 0x4b, 0x00);
/// ABORTED COMMAND / PROTOCOL SERVICE CRC ERROR: a Data-Out data digest error.
const CRC_ERROR: (u8, u8, u8) = (0x0b, 0x47, 0x05);
/// ABORTED COMMAND / INITIATOR RESPONSE TIMEOUT.
const TIMED_OUT: (u8, u8, u8) = (0x0b, 0x4b, 0x06);

impl Writes {
    /// A session whose connection has this write budget and Data-Out timeout.
    pub fn new(budget: u64, timeout: Millis) -> Self {
        Writes {
            budget,
            timeout,
            ..Writes::default()
        }
    }

    /// The harness built write command `serial` with data expected: `imm` bytes of immediate
    /// data, unsolicited data up to `unsol_end`.
    pub fn built(&mut self, serial: usize, itt: u32, edtl: u32, imm: u32, unsol_end: u32) {
        self.cmds.push(WriteCmd {
            serial,
            itt,
            edtl,
            first: (imm, unsol_end.max(imm)),
            used: false,
        });
    }

    /// A SCSI command PDU was fed at `now`.
    pub fn fed(&mut self, c: &ScsiCommand, now: Millis) {
        self.fed.entry(c.itt).or_default().0 += 1;
        self.quiet.entry(c.itt).or_insert(now);
        if c.write && c.expected_data_len > 0 {
            self.writes.insert(c.itt);
            if u64::from(c.expected_data_len) > self.budget {
                self.too_long.insert(c.itt);
            }
        }
    }

    /// A task with this tag ended at `now` (handed to the SCSI layer, or answered without a
    /// completion): its R2Ts are over, a later task with the tag starts afresh.
    fn ended(&mut self, itt: u32, now: Millis) {
        let n = self.fed.entry(itt).or_default();
        n.1 += 1;
        assert!(
            n.1 <= n.0,
            "task tag {itt:#x}: {} tasks ended, {} commands fed",
            n.1,
            n.0
        );
        self.seqs.remove(&itt);
        self.quiet.insert(itt, now);
    }

    /// `Output::Execute` of the harness's command `serial` (tag `itt`), or of a command from
    /// raw bytes (tag unknown).
    pub fn executed(&mut self, cmd: Option<(usize, u32)>, now: Millis) {
        let Some((serial, itt)) = cmd else { return };
        if let Some(c) = self.cmds.iter_mut().find(|c| c.serial == serial) {
            c.used = true;
        }
        self.ended(itt, now);
    }

    /// A SCSI command with this tag was fed.
    pub fn ever_fed(&self, itt: u32) -> bool {
        self.fed.contains_key(&itt)
    }

    /// A SCSI Response outside a completion, for `itt`, in a batch fed by a PDU with tag
    /// `fed_itt` (a Data-Out or command ending its task with an error, or a held write
    /// longer than the budget reaching its turn). True for a write refused for its length.
    pub fn answered(&mut self, itt: u32, fed_itt: u32, data: &[u8], now: Millis) -> bool {
        let sense = sense_of(data);
        if itt != fed_itt || sense == REFUSED {
            assert_eq!(
                sense, REFUSED,
                "a response for {itt:#x} in a batch of {fed_itt:#x}"
            );
            assert!(
                self.too_long.contains(&itt),
                "write {itt:#x} refused for its length, none fed was longer than {}",
                self.budget
            );
        }
        assert!(
            [REFUSED, DATA_PHASE_ERROR, CRC_ERROR].contains(&sense),
            "task {itt:#x} ended with sense {sense:02x?}"
        );
        self.ended(itt, now);
        sense == REFUSED
    }

    /// A SCSI Response out of a timer call at `now`: the Data-Out timeout of a write.
    pub fn timed_out(&mut self, itt: u32, data: &[u8], now: Millis) {
        assert_eq!(sense_of(data), TIMED_OUT, "a timer ended task {itt:#x}");
        assert!(self.timeout > 0, "a Data-Out timeout while it is off");
        assert!(
            self.writes.contains(&itt),
            "Data-Out timeout of {itt:#x}, never a write"
        );
        let since = self.quiet.get(&itt).copied().unwrap_or(Millis::MAX);
        assert!(
            now >= since.saturating_add(self.timeout),
            "task {itt:#x} timed out at {now} ms, its last progress was at {since} ms \
             (timeout {} ms)",
            self.timeout
        );
        self.ended(itt, now);
    }

    /// A completion starts: R2Ts until [`Writes::end_completion`] come out of it.
    pub fn begin_completion(&mut self) {
        self.completions += 1;
        self.completion = self.completions;
    }

    /// The completion is over.
    pub fn end_completion(&mut self) {
        self.completion = 0;
    }

    /// An R2T sent at `now`.
    pub fn r2t(&mut self, r: &R2t, now: Millis, tmf: Tmf) {
        let end = u64::from(r.buffer_offset) + u64::from(r.desired_len);
        self.quiet.insert(r.itt, now);
        if r.r2t_sn == 0 {
            self.start_seq(r, tmf);
        } else {
            let s = self.seqs.get_mut(&r.itt).unwrap_or_else(|| {
                panic!("R2TSN {} for {:#x}, no sequence started", r.r2t_sn, r.itt)
            });
            assert_eq!(r.r2t_sn, s.next_sn, "R2TSN of {:#x}", r.itt);
            assert_eq!(r.buffer_offset, s.next_off, "R2T offset of {:#x}", r.itt);
            assert!(
                self.completion == 0 || s.completion == self.completion,
                "a completion continued the R2Ts of {:#x}",
                r.itt
            );
            s.next_sn += 1;
            s.next_off = u32::try_from(end).unwrap_or(u32::MAX);
        }
        let s = &self.seqs[&r.itt];
        assert!(
            end <= u64::from(s.edtl.0),
            "R2T of {:#x} up to {end}, beyond the expected length {}",
            r.itt,
            s.edtl.0
        );
        self.check_budget(tmf.epoch);
    }

    fn start_seq(&mut self, r: &R2t, tmf: Tmf) {
        let edtl = if r.itt >= RAW_TAGS {
            (u32::MAX, 0)
        } else {
            if let Some(s) = self.seqs.get(&r.itt) {
                assert!(
                    !s.trusted(tmf.epoch),
                    "a second R2T sequence for the live task {:#x}",
                    r.itt
                );
            }
            self.bind(r)
        };
        let end = u64::from(r.buffer_offset) + u64::from(r.desired_len);
        self.seqs.insert(
            r.itt,
            Seq {
                next_sn: 1,
                next_off: u32::try_from(end).unwrap_or(u32::MAX),
                edtl,
                epoch: tmf.epoch,
                certain: tmf.settled,
                completion: self.completion,
            },
        );
    }

    /// The write commands a first R2T may be for: its tag, not used by another sequence nor
    /// executed, the offset where their immediate or unsolicited data ends, the R2T within
    /// their expected length. Marks the first used; returns the largest and smallest length.
    fn bind(&mut self, r: &R2t) -> (u32, u32) {
        let off = r.buffer_offset;
        let end = u64::from(off) + u64::from(r.desired_len);
        let fits = |c: &WriteCmd| {
            c.itt == r.itt
                && !c.used
                && (c.first.0..=c.first.1).contains(&off)
                && end <= u64::from(c.edtl)
        };
        let lens: Vec<u32> = self
            .cmds
            .iter()
            .filter(|c| fits(c))
            .map(|c| c.edtl)
            .collect();
        assert!(
            !lens.is_empty(),
            "R2T for {:#x} at {off} (+{}): no write command waiting for it",
            r.itt,
            r.desired_len
        );
        if let Some(c) = self.cmds.iter_mut().find(|c| fits(c)) {
            c.used = true;
        }
        let max = lens.iter().copied().max().unwrap_or(0);
        let min = lens.iter().copied().min().unwrap_or(0);
        (max, min)
    }

    /// The writes soliciting data together fit the budget (one alone always may).
    fn check_budget(&self, epoch: u32) {
        let live: Vec<u64> = self
            .seqs
            .values()
            .filter(|s| s.trusted(epoch) && s.edtl.0 != u32::MAX)
            .map(|s| u64::from(s.edtl.1))
            .collect();
        let sum: u64 = live.iter().sum();
        assert!(
            live.len() < 2 || sum <= self.budget,
            "{} writes soliciting {sum} bytes, over the write budget {}",
            live.len(),
            self.budget
        );
    }
}
