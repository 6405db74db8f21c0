//! Adaptive reply coalescing, after the "Adaptive Nagle" of the SCST usermode server.
//!
//! A connection's *busy period* starts with the first command after its replies were written
//! and ends when its replies are written again: without holding, one event loop iteration (one
//! read that drained the socket); while replies are held, every following iteration that brings
//! more commands. While replies are held, the loop polls again without sleeping: if more
//! commands came, their replies join the held ones; the instant an iteration brings none (the
//! socket went idle), everything held is written, as it is when the held bytes or iterations
//! reach their limits.
//!
//! Holding pays only while the initiator is not waiting for the held replies: it still has
//! replies of ours to work through, so its next commands come when it is done with those,
//! whatever we do, and the held replies join one larger write. When it has read everything we
//! wrote, a held reply is pure latency (and, at a moderate queue depth, a starved initiator).
//! In `Auto` mode the deciding signal is therefore the initiator's *backlog*: statuses already
//! written that its ExpStatSN has not yet acknowledged ([`Coalescer::end_iteration_unread`]).
//! Replies are held while that backlog reaches the threshold, so a queue depth at or below the
//! threshold never waits, nor does an initiator that sends its commands in one burst after
//! reading every reply. Without that signal (`Coalescer::end_iteration`, kept for the unit
//! tests), `Auto` falls back on a moving average of the commands per busy period.

/// When replies may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoalesceMode {
    /// Write the replies of every iteration at its end (the default: on loopback, against
    /// libiscsi's load generator and against `ustgt-load`, holding measured no gain beyond the
    /// run-to-run noise; one write already carries every reply of an iteration).
    #[default]
    Off,
    /// Hold while the connection is busy enough (see [`Coalesce::threshold`]).
    Auto,
    /// Hold after every iteration that brought commands, whatever the load.
    On,
}

/// Reply coalescing settings of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesce {
    /// When replies may be held.
    pub mode: CoalesceMode,
    /// In `Auto` mode, the initiator's backlog of written, unacknowledged replies (or, when
    /// that is not known, the average number of commands per busy period) from which replies
    /// are held.
    pub threshold: u32,
    /// Never hold more than this many bytes of replies.
    pub max_bytes: usize,
    /// Never hold replies over more than this many consecutive iterations.
    pub max_iterations: u32,
}

impl Default for Coalesce {
    fn default() -> Self {
        Coalesce {
            mode: CoalesceMode::default(),
            threshold: 8,
            max_bytes: 16 * 1024,
            max_iterations: 2,
        }
    }
}

/// The coalescing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Coalescer {
    /// Commands that arrived during the current iteration.
    iter_cmds: u32,
    /// Commands of the current busy period.
    period_cmds: u32,
    /// Moving average of commands per busy period, times 16.
    avg_x16: u32,
    /// Consecutive iterations the current replies have been held.
    held_for: u32,
    /// Statuses written that the initiator had not acknowledged at the end of the last
    /// iteration, when known.
    backlog: Option<u32>,
}

impl Coalescer {
    /// A command arrived.
    pub fn command(&mut self) {
        self.iter_cmds = self.iter_cmds.saturating_add(1);
    }

    /// True when the connection counts as busy in `Auto` mode: the initiator's backlog reaches
    /// the threshold or, when the backlog is not known, the average busy period does.
    pub fn busy(&self, cfg: &Coalesce) -> bool {
        match self.backlog {
            Some(b) => b >= cfg.threshold,
            None => self.avg_x16 >= cfg.threshold.saturating_mul(16),
        }
    }

    /// End of an iteration with `pending` bytes of replies: true to hold them, false to write.
    /// `Auto` decides on the average busy period (the initiator's backlog is not known).
    #[cfg(test)]
    pub fn end_iteration(&mut self, cfg: &Coalesce, pending: usize) -> bool {
        self.backlog = None;
        self.decide(cfg, pending)
    }

    /// As `Coalescer::end_iteration`, given the statuses produced that the initiator has not
    /// acknowledged through ExpStatSN (`unread`, which includes the replies not yet written):
    /// `Auto` holds only while the initiator still has at least the threshold of written
    /// replies to read.
    pub fn end_iteration_unread(&mut self, cfg: &Coalesce, pending: usize, unread: u32) -> bool {
        let unwritten = self.period_cmds.saturating_add(self.iter_cmds);
        self.backlog = Some(unread.saturating_sub(unwritten));
        self.decide(cfg, pending)
    }

    fn decide(&mut self, cfg: &Coalesce, pending: usize) -> bool {
        let n = std::mem::take(&mut self.iter_cmds);
        let active = n > 0;
        self.period_cmds = self.period_cmds.saturating_add(n);
        let hold = active
            && pending > 0
            && pending < cfg.max_bytes
            && self.held_for < cfg.max_iterations
            && match cfg.mode {
                CoalesceMode::Off => false,
                CoalesceMode::On => true,
                CoalesceMode::Auto => self.busy(cfg),
            };
        if !hold && self.period_cmds > 0 {
            let p = self.period_cmds.min(u32::MAX / 32) * 16;
            self.avg_x16 = (self.avg_x16 * 7 + p) / 8;
            self.period_cmds = 0;
        }
        if hold {
            self.held_for += 1;
        } else {
            self.held_for = 0;
        }
        hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(threshold: u32) -> Coalesce {
        Coalesce {
            mode: CoalesceMode::Auto,
            threshold,
            ..Coalesce::default()
        }
    }

    /// One busy period of `n` commands (one iteration), then an idle iteration.
    fn period(c: &mut Coalescer, cfg: &Coalesce, n: u32) -> (bool, bool) {
        for _ in 0..n {
            c.command();
        }
        let held = c.end_iteration(cfg, 100);
        let idle = c.end_iteration(cfg, 100);
        (held, idle)
    }

    #[test]
    fn queue_depth_one_never_holds() {
        let cfg = auto(4);
        let mut c = Coalescer::default();
        for _ in 0..100 {
            assert_eq!(period(&mut c, &cfg, 1), (false, false));
        }
    }

    #[test]
    fn busy_connection_holds_until_idle() {
        let cfg = auto(4);
        let mut c = Coalescer::default();
        // Deep busy periods, written at once while the average builds up.
        let mut periods = 0;
        while !c.busy(&cfg) {
            for _ in 0..8 {
                c.command();
            }
            assert!(!c.end_iteration(&cfg, 100));
            periods += 1;
            assert!(periods < 20);
        }
        // Busy: replies are held while commands keep coming, written when none came.
        c.command();
        assert!(c.end_iteration(&cfg, 100));
        c.command();
        assert!(c.end_iteration(&cfg, 100));
        assert!(!c.end_iteration(&cfg, 100));
        // A run of single commands brings the average down: no more holding.
        for _ in 0..30 {
            period(&mut c, &cfg, 1);
        }
        assert!(!c.busy(&cfg));
        c.command();
        assert!(!c.end_iteration(&cfg, 100));
    }

    #[test]
    fn limits_and_modes() {
        let mut cfg = Coalesce {
            mode: CoalesceMode::On,
            max_bytes: 1000,
            max_iterations: 2,
            ..Coalesce::default()
        };
        let mut c = Coalescer::default();
        c.command();
        assert!(!c.end_iteration(&cfg, cfg.max_bytes), "too many bytes");
        for expect in [true, true, false, true] {
            c.command();
            assert_eq!(c.end_iteration(&cfg, 10), expect);
        }
        assert!(!c.end_iteration(&cfg, 10), "no commands: idle");
        assert!(!c.end_iteration(&cfg, 0));
        cfg.mode = CoalesceMode::Off;
        c.command();
        assert!(!c.end_iteration(&cfg, 10));
    }

    /// `n` commands in one iteration whose replies are all the initiator has not acknowledged
    /// besides `backlog` earlier ones; true when held.
    fn burst(c: &mut Coalescer, cfg: &Coalesce, n: u32, backlog: u32) -> bool {
        for _ in 0..n {
            c.command();
        }
        c.end_iteration_unread(cfg, 100, backlog + n)
    }

    #[test]
    fn an_initiator_waiting_for_every_reply_is_never_kept_waiting() {
        let cfg = auto(8);
        let mut c = Coalescer::default();
        // Bursts of 64 commands sent after reading every reply: nothing to wait for.
        for _ in 0..50 {
            assert!(!burst(&mut c, &cfg, 64, 0));
            assert!(!c.busy(&cfg));
        }
        // Queue depth 8 trickling in: the backlog never reaches the threshold.
        for _ in 0..50 {
            assert!(!burst(&mut c, &cfg, 1, 7));
        }
    }

    #[test]
    fn an_initiator_with_a_backlog_gets_its_replies_coalesced() {
        let cfg = auto(8);
        let mut c = Coalescer::default();
        // 20 replies written and not yet read: hold while commands keep coming...
        assert!(burst(&mut c, &cfg, 2, 20));
        assert!(c.busy(&cfg));
        // ... (the held replies count as unread too, not as backlog) ...
        c.command();
        assert!(c.end_iteration_unread(&cfg, 200, 20 + 3));
        // ... until an iteration brings none.
        assert!(!c.end_iteration_unread(&cfg, 300, 23));
        // The initiator caught up (its ExpStatSN acknowledged all but 5): write at once.
        assert!(!burst(&mut c, &cfg, 2, 5));
        assert!(!c.busy(&cfg));
        // The byte and iteration limits still apply.
        c.command();
        assert!(!c.end_iteration_unread(&cfg, cfg.max_bytes, 30));
        let mut held = 0;
        for _ in 0..5 {
            held += u32::from(burst(&mut c, &cfg, 1, 30));
        }
        assert_eq!(held, 4, "held twice, written, held twice, written");
    }
}
