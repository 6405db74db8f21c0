//! Unit attention conditions, kept per I_T nexus (SAM-5 5.14, SPC-4 7.5).

use std::collections::HashMap;

use crate::sense::Asc;
use crate::NexusId;

/// Most conditions queued for one nexus; older ones are dropped past this.
const MAX_PENDING: usize = 8;
/// Most nexuses whose unit attentions are remembered after they are lost.
pub const MAX_NEXUSES: usize = 4096;

/// Pending unit attentions of every nexus that has talked to the logical unit.
#[derive(Debug, Default)]
pub struct UnitAttentions {
    nexuses: HashMap<NexusId, Vec<Asc>>,
}

fn is_reset(asc: Asc) -> bool {
    asc.asc() == 0x29
}

impl UnitAttentions {
    /// Notes a nexus; one seen for the first time gets POWER ON, RESET, OR BUS DEVICE RESET
    /// OCCURRED.
    pub fn register(&mut self, nexus: NexusId) {
        self.nexuses
            .entry(nexus)
            .or_insert_with(|| vec![Asc::POWER_ON_RESET]);
    }

    /// Establishes `asc` for one nexus. A reset condition supersedes everything pending.
    pub fn establish(&mut self, nexus: NexusId, asc: Asc) {
        let q = self.nexuses.entry(nexus).or_default();
        push(q, asc);
    }

    /// Establishes `asc` for every known nexus.
    pub fn establish_all(&mut self, asc: Asc) {
        for q in self.nexuses.values_mut() {
            push(q, asc);
        }
    }

    /// Establishes `asc` for every known nexus but `except`.
    pub fn establish_others(&mut self, except: NexusId, asc: Asc) {
        for (n, q) in self.nexuses.iter_mut() {
            if *n != except {
                push(q, asc);
            }
        }
    }

    /// Takes the highest-priority pending condition of `nexus`.
    pub fn pop(&mut self, nexus: NexusId) -> Option<Asc> {
        let q = self.nexuses.get_mut(&nexus)?;
        if q.is_empty() {
            None
        } else {
            Some(q.remove(0))
        }
    }

    /// Whether `nexus` has a pending condition.
    #[cfg(test)]
    pub fn pending(&self, nexus: NexusId) -> bool {
        self.nexuses.get(&nexus).is_some_and(|q| !q.is_empty())
    }

    /// Removes a specific condition for `nexus`.
    pub fn clear(&mut self, nexus: NexusId, asc: Asc) {
        if let Some(q) = self.nexuses.get_mut(&nexus) {
            q.retain(|a| *a != asc);
        }
    }

    /// The nexus is gone (logout, connection loss, reinstatement): when it comes back, its
    /// first command reports I_T NEXUS LOSS OCCURRED (SAM-5 6.3.4), which supersedes anything
    /// pending. Past [`MAX_NEXUSES`] known nexuses a lost one is forgotten instead (it then
    /// starts again with POWER ON), so that the table stays bounded.
    pub fn lost(&mut self, nexus: NexusId) {
        if self.nexuses.len() > MAX_NEXUSES {
            self.nexuses.remove(&nexus);
            return;
        }
        let q = self.nexuses.entry(nexus).or_default();
        push(q, Asc::I_T_NEXUS_LOSS);
    }
}

fn push(q: &mut Vec<Asc>, asc: Asc) {
    if is_reset(asc) {
        q.clear();
        q.push(asc);
        return;
    }
    if q.contains(&asc) {
        return;
    }
    if q.len() >= MAX_PENDING {
        q.pop();
    }
    q.push(asc);
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NexusId = NexusId(1);
    const B: NexusId = NexusId(2);

    #[test]
    fn a_lost_nexus_comes_back_with_nexus_loss() {
        let mut u = UnitAttentions::default();
        u.register(A);
        u.establish(A, Asc::POWER_ON_RESET);
        u.lost(A);
        u.register(A);
        assert_eq!(u.pop(A), Some(Asc::I_T_NEXUS_LOSS));
        assert_eq!(u.pop(A), None);
        // Never seen before: lost still leaves the nexus-loss condition for its return.
        u.lost(B);
        assert_eq!(u.pop(B), Some(Asc::I_T_NEXUS_LOSS));
    }

    #[test]
    fn lost_nexuses_are_bounded() {
        let mut u = UnitAttentions::default();
        for i in 0..MAX_NEXUSES as u64 + 10 {
            u.lost(NexusId(i));
        }
        assert!(u.nexuses.len() <= MAX_NEXUSES + 1);
    }

    #[test]
    fn first_sight_gives_power_on_once() {
        let mut u = UnitAttentions::default();
        u.register(A);
        u.register(A);
        assert_eq!(u.pop(A), Some(Asc::POWER_ON_RESET));
        assert_eq!(u.pop(A), None);
        u.register(A);
        assert_eq!(u.pop(A), None);
    }

    #[test]
    fn others_only_and_dedup() {
        let mut u = UnitAttentions::default();
        u.register(A);
        u.register(B);
        u.pop(A);
        u.pop(B);
        u.establish_others(A, Asc::MODE_PARAMETERS_CHANGED);
        u.establish_others(A, Asc::MODE_PARAMETERS_CHANGED);
        assert!(!u.pending(A));
        assert_eq!(u.pop(B), Some(Asc::MODE_PARAMETERS_CHANGED));
        assert_eq!(u.pop(B), None);
    }

    #[test]
    fn reset_supersedes() {
        let mut u = UnitAttentions::default();
        u.register(A);
        u.establish(A, Asc::MODE_PARAMETERS_CHANGED);
        u.establish_all(Asc::BUS_DEVICE_RESET);
        assert_eq!(u.pop(A), Some(Asc::BUS_DEVICE_RESET));
        assert_eq!(u.pop(A), None);
        u.establish(A, Asc::REPORTED_LUNS_DATA_CHANGED);
        u.clear(A, Asc::REPORTED_LUNS_DATA_CHANGED);
        assert!(!u.pending(A));
        u.lost(A);
        u.register(A);
        assert_eq!(u.pop(A), Some(Asc::I_T_NEXUS_LOSS));
    }
}
