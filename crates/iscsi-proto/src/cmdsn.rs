//! Command numbering: RFC 1982 serial number arithmetic on 32-bit sequence
//! numbers and the ExpCmdSN / MaxCmdSN window with its queue of commands that
//! arrived ahead of a gap (RFC 7143 4.2.2.1).

use iscsi_wire::Pdu;

/// `a < b` in 32-bit serial number arithmetic (RFC 1982).
pub fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// `a <= b` in serial number arithmetic.
pub fn sn_le(a: u32, b: u32) -> bool {
    a == b || sn_lt(a, b)
}

/// Where a non-immediate command falls relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// CmdSN == ExpCmdSN: deliver now.
    Now,
    /// ExpCmdSN < CmdSN <= MaxCmdSN: hold until the gap fills.
    Later,
    /// Outside the window: silently discard.
    Outside,
}

/// The target's command window.
#[derive(Debug, Clone)]
pub struct CmdWindow {
    exp: u32,
    size: u32,
    held: Vec<(u32, Pdu)>,
    /// CmdSNs declared received without a command (TMF RefCmdSN rule, RFC 7143 11.5.1).
    consumed: Vec<u32>,
}

impl CmdWindow {
    /// A window starting at `exp` with `size` slots (at least 1).
    pub fn new(exp: u32, size: u32) -> Self {
        CmdWindow {
            exp,
            size: size.max(1),
            held: Vec::new(),
            consumed: Vec::new(),
        }
    }

    /// ExpCmdSN.
    pub fn exp_cmd_sn(&self) -> u32 {
        self.exp
    }

    /// MaxCmdSN (never decreases: it moves only with ExpCmdSN).
    pub fn max_cmd_sn(&self) -> u32 {
        self.exp.wrapping_add(self.size - 1)
    }

    /// True when `sn` lies in [ExpCmdSN, MaxCmdSN].
    pub fn contains(&self, sn: u32) -> bool {
        sn_le(self.exp, sn) && sn_le(sn, self.max_cmd_sn())
    }

    /// Classify a non-immediate command.
    pub fn classify(&self, sn: u32) -> Slot {
        if sn == self.exp {
            Slot::Now
        } else if self.contains(sn) {
            Slot::Later
        } else {
            Slot::Outside
        }
    }

    /// Accept the command numbered ExpCmdSN: advance past it and past every
    /// CmdSN already declared consumed.
    pub fn advance(&mut self) {
        self.exp = self.exp.wrapping_add(1);
        while let Some(pos) = self.consumed.iter().position(|&c| c == self.exp) {
            self.consumed.swap_remove(pos);
            self.exp = self.exp.wrapping_add(1);
        }
    }

    /// Hold a command that arrived ahead of a gap. A duplicate CmdSN is dropped
    /// (returns false).
    pub fn hold(&mut self, sn: u32, pdu: Pdu) -> bool {
        if self.held.iter().any(|(s, _)| *s == sn) || self.consumed.contains(&sn) {
            return false;
        }
        self.held.push((sn, pdu));
        true
    }

    /// The held command numbered ExpCmdSN, if any (the caller then calls `advance`).
    pub fn take_next(&mut self) -> Option<Pdu> {
        let pos = self.held.iter().position(|(s, _)| *s == self.exp)?;
        Some(self.held.swap_remove(pos).1)
    }

    /// Declare `sn` received (no command will be executed for it).
    pub fn consume(&mut self, sn: u32) {
        if let Some(pos) = self.held.iter().position(|(s, _)| *s == sn) {
            self.held.swap_remove(pos);
        }
        if sn == self.exp {
            self.advance();
        } else if self.contains(sn) && !self.consumed.contains(&sn) {
            self.consumed.push(sn);
        }
    }

    /// Whether a command with this ITT is held.
    pub fn holds_itt(&self, itt: u32) -> bool {
        self.held.iter().any(|(_, p)| p.bhs.itt() == itt)
    }

    /// Whether a held command matches `pred`.
    pub fn holds_where(&self, pred: impl Fn(&Pdu) -> bool) -> bool {
        self.held.iter().any(|(_, p)| pred(p))
    }

    /// Remove a held command by its ITT; returns its CmdSN.
    pub fn remove_held_itt(&mut self, itt: u32) -> Option<u32> {
        let pos = self.held.iter().position(|(_, p)| p.bhs.itt() == itt)?;
        Some(self.held.swap_remove(pos).0)
    }

    /// Remove the held commands matching `pred` and declare their CmdSNs
    /// received, so the window moves past them once the gap before them fills.
    pub fn discard_held_where(&mut self, pred: impl Fn(&Pdu) -> bool) -> usize {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, p)| pred(p));
        self.held = keep;
        for (sn, _) in &gone {
            self.consume(*sn);
        }
        gone.len()
    }

    /// Drop every held command.
    pub fn clear_held(&mut self) {
        self.held.clear();
    }

    /// Number of held commands.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_wire::NopOut;

    fn nop(itt: u32) -> Pdu {
        Pdu::new(
            NopOut {
                itt,
                ..Default::default()
            },
            Vec::new(),
        )
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(sn_lt(1, 2));
        assert!(!sn_lt(2, 1));
        assert!(sn_lt(0xffff_ffff, 0));
        assert!(sn_lt(0xffff_fff0, 5));
        assert!(!sn_lt(5, 0xffff_fff0));
        assert!(sn_le(7, 7));
        assert!(!sn_lt(0, 0x8000_0000) || !sn_lt(0x8000_0000, 0));
    }

    #[test]
    fn window_edges_across_wraparound() {
        let w = CmdWindow::new(0xffff_fffe, 4);
        assert_eq!(w.max_cmd_sn(), 1);
        assert_eq!(w.classify(0xffff_fffe), Slot::Now);
        assert_eq!(w.classify(0xffff_ffff), Slot::Later);
        assert_eq!(w.classify(0), Slot::Later);
        assert_eq!(w.classify(1), Slot::Later);
        assert_eq!(w.classify(2), Slot::Outside);
        assert_eq!(w.classify(0xffff_fffd), Slot::Outside);
    }

    #[test]
    fn held_commands_delivered_in_order() {
        let mut w = CmdWindow::new(10, 8);
        assert!(w.hold(12, nop(12)));
        assert!(w.hold(11, nop(11)));
        assert!(!w.hold(11, nop(99)), "duplicate CmdSN dropped");
        assert!(w.take_next().is_none());
        w.advance(); // 10 delivered
        assert_eq!(w.take_next().map(|p| p.bhs.itt()), Some(11));
        w.advance();
        assert_eq!(w.take_next().map(|p| p.bhs.itt()), Some(12));
        w.advance();
        assert_eq!(w.exp_cmd_sn(), 13);
        assert_eq!(w.held_len(), 0);
    }

    #[test]
    fn consumed_gap_is_skipped() {
        let mut w = CmdWindow::new(5, 8);
        w.consume(6);
        w.advance(); // 5
        assert_eq!(w.exp_cmd_sn(), 7);
        w.consume(7);
        assert_eq!(w.exp_cmd_sn(), 8);
        w.consume(100); // outside: ignored
        assert_eq!(w.exp_cmd_sn(), 8);
    }

    #[test]
    fn discarded_held_commands_do_not_block_the_window() {
        let mut w = CmdWindow::new(1, 8);
        w.hold(2, nop(20));
        w.hold(3, nop(30));
        assert_eq!(w.discard_held_where(|p| p.bhs.itt() == 20), 1);
        w.advance(); // 1 arrives
        assert_eq!(w.exp_cmd_sn(), 3, "2 was declared received");
        assert_eq!(w.take_next().map(|p| p.bhs.itt()), Some(30));
    }

    #[test]
    fn single_slot_window() {
        let w = CmdWindow::new(3, 1);
        assert_eq!(w.max_cmd_sn(), 3);
        assert_eq!(w.classify(4), Slot::Outside);
    }
}
