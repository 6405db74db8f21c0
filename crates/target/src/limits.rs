//! Admission limits shared by the acceptor and the event loops.
//!
//! - Connections in the login phase, per portal and per source address, are counted from
//!   accept until login completes or the connection ends ([`LoginGate`], [`LoginTicket`]). A
//!   connection beyond either limit is closed right after accept: no iSCSI exchange has begun,
//!   so there is no Login Request to answer, and reading one would cost the resources the
//!   limit protects (a slowloris holds its connections open exactly that way). Initiators
//!   treat it as a failed connection attempt and retry after their back-off.
//! - Sessions (normal and discovery) are counted from the final Login Response until their
//!   connection ends; a login beyond `max_sessions` is refused with login status 0x0302 (Target
//!   Error, "out of resources", RFC 7143 11.13.5). 0x0206 "too many connections" is not the
//!   answer: it refers to the connections of one session. A session reinstatement (same
//!   initiator, ISID and target as a live session) is always admitted, since it replaces the
//!   old session.
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use iscsi_proto::{SessionGate, SessionInfo};

use crate::registry::Registry;
use crate::stats::Gauges;

/// Limits on the connections and sessions of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most sessions (normal and discovery) at a time; a login beyond is refused with login
    /// status 0x0302 (out of resources).
    pub max_sessions: usize,
    /// Most connections in the login phase at a time on one portal; more are closed at
    /// accept.
    pub max_logins_per_portal: usize,
    /// Most connections in the login phase at a time from one source address (over all
    /// portals); more are closed at accept.
    pub max_logins_per_host: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_sessions: 4096,
            max_logins_per_portal: 256,
            max_logins_per_host: 64,
        }
    }
}

#[derive(Default)]
struct Counts {
    portals: Vec<usize>,
    hosts: HashMap<IpAddr, usize>,
}

/// Counts connections in the login phase per portal and per source address.
pub(crate) struct LoginGate {
    limits: ConnLimits,
    counts: Mutex<Counts>,
    gauges: Arc<Gauges>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LoginGate {
    /// A gate for `portals` listening sockets.
    pub fn new(limits: ConnLimits, portals: usize, gauges: Arc<Gauges>) -> Arc<LoginGate> {
        Arc::new(LoginGate {
            limits,
            counts: Mutex::new(Counts {
                portals: vec![0; portals],
                hosts: HashMap::new(),
            }),
            gauges,
        })
    }

    /// A ticket for one more connection in login on `portal` from `host`, or `None` when a
    /// limit is reached (the connection is then to be closed).
    pub fn try_enter(self: &Arc<Self>, portal: usize, host: IpAddr) -> Option<LoginTicket> {
        let mut c = lock(&self.counts);
        let on_portal = c.portals.get(portal).copied().unwrap_or(0);
        let from_host = c.hosts.get(&host).copied().unwrap_or(0);
        if on_portal >= self.limits.max_logins_per_portal
            || from_host >= self.limits.max_logins_per_host
        {
            self.gauges.refused_connection();
            log::debug!(
                "connection from {host} closed at accept: {from_host} logins from that address, \
                 {on_portal} on the portal (limits {} and {})",
                self.limits.max_logins_per_host,
                self.limits.max_logins_per_portal
            );
            return None;
        }
        if let Some(n) = c.portals.get_mut(portal) {
            *n += 1;
        }
        *c.hosts.entry(host).or_insert(0) += 1;
        self.gauges.set_logins(self.total(&c));
        Some(LoginTicket {
            gate: self.clone(),
            portal,
            host,
        })
    }

    fn total(&self, c: &Counts) -> u64 {
        c.portals.iter().sum::<usize>() as u64
    }

    fn leave(&self, portal: usize, host: IpAddr) {
        let mut c = lock(&self.counts);
        if let Some(n) = c.portals.get_mut(portal) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = c.hosts.get_mut(&host) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.hosts.remove(&host);
            }
        }
        self.gauges.set_logins(self.total(&c));
    }
}

/// One connection in the login phase; counted until dropped (login complete or connection
/// gone).
pub(crate) struct LoginTicket {
    gate: Arc<LoginGate>,
    portal: usize,
    host: IpAddr,
}

impl Drop for LoginTicket {
    fn drop(&mut self) {
        self.gate.leave(self.portal, self.host);
    }
}

/// The session limit, consulted by every connection's protocol engine before its final Login
/// Response.
pub(crate) struct SessionSlots {
    pub registry: Arc<Registry>,
}

impl fmt::Debug for SessionSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSlots")
    }
}

impl SessionGate for SessionSlots {
    fn admit(&self, info: &SessionInfo) -> Result<(), u16> {
        self.registry.admit_session(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(portal: usize, host: usize) -> (Arc<LoginGate>, Arc<Gauges>) {
        let gauges = Arc::new(Gauges::default());
        let limits = ConnLimits {
            max_sessions: 10,
            max_logins_per_portal: portal,
            max_logins_per_host: host,
        };
        (LoginGate::new(limits, 2, gauges.clone()), gauges)
    }

    #[test]
    fn per_host_limit_counts_every_portal() {
        let (g, gauges) = gate(10, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t1 = g.try_enter(0, a).expect("first");
        let _t2 = g.try_enter(1, a).expect("second, other portal");
        assert!(g.try_enter(0, a).is_none(), "third from the same host");
        let _t3 = g.try_enter(0, b).expect("another host");
        assert_eq!(gauges.logins(), 3);
        assert_eq!(gauges.refused(), 1);
        drop(t1);
        assert_eq!(gauges.logins(), 2);
        let _t4 = g.try_enter(0, a).expect("room again after a login ended");
    }

    #[test]
    fn per_portal_limit() {
        let (g, gauges) = gate(2, 10);
        let hosts: Vec<IpAddr> = (1..=3u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let t: Vec<_> = hosts[..2]
            .iter()
            .map(|h| g.try_enter(0, *h).expect("room"))
            .collect();
        assert!(g.try_enter(0, hosts[2]).is_none());
        assert!(
            g.try_enter(1, hosts[2]).is_some(),
            "the other portal has room"
        );
        drop(t);
        assert_eq!(gauges.logins(), 0, "every ticket returned");
        assert!(
            lock(&g.counts).hosts.is_empty(),
            "no host entry left behind"
        );
    }
}
