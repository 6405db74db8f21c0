//! Target port groups (SPC-4 5.16, implicit asymmetric logical unit access): the target ports
//! a logical unit is reached through, REPORT TARGET PORT GROUPS (SPC-4 6.37) and the target
//! port designators of VPD 83h.
//!
//! Every portal group of the target (an iSCSI target portal group is a SCSI target port) is
//! one target port, numbered from 1 (its RELATIVE TARGET PORT IDENTIFIER, which is also its
//! portal group tag), and forms a target port group of its own with the same number. Every
//! group is always in the active/optimized state: each port reaches the same logical unit
//! with the same performance, and the target never changes a state by itself, so the only
//! supported state is active/optimized and TPGS reports implicit ALUA (SET TARGET PORT GROUPS
//! is not offered).

use crate::cdb::{be32, byte, clip};
use crate::sense::{CmdResult, Sense};
use crate::{Device, NexusId, Request};

/// PROTOCOL IDENTIFIER of iSCSI, in the high nibble of a designation descriptor's byte 0.
const PROTOCOL_ISCSI: u8 = 0x50;
/// PIV set, ASSOCIATION 01b (the target port): byte 1 of a target port designator, without
/// its type.
const PORT_DESIGNATOR: u8 = 0x80 | 0x10;
/// DESIGNATOR TYPE of a relative target port identifier.
const TYPE_RELATIVE_PORT: u8 = 0x4;
/// DESIGNATOR TYPE of a target port group.
const TYPE_PORT_GROUP: u8 = 0x5;
/// ASYMMETRIC ACCESS STATE active/optimized, with PREF clear.
const ACTIVE_OPTIMIZED: u8 = 0x00;
/// Supported states: AO_SUP only.
const SUPPORTED_STATES: u8 = 0x01;
/// PARAMETER DATA FORMAT 001b: the extended header.
const EXTENDED_FORMAT: u8 = 0x01;
/// IMPLICIT TRANSITION TIME reported in the extended header (no transition ever happens).
const TRANSITION_TIME: u8 = 0;

/// A target port designator (relative port or port group) for VPD 83h.
fn port_designator(kind: u8, id: u16) -> Vec<u8> {
    let [hi, lo] = id.to_be_bytes();
    vec![
        PROTOCOL_ISCSI | 0x01,
        PORT_DESIGNATOR | kind,
        0,
        4,
        0,
        0,
        hi,
        lo,
    ]
}

/// One target port group descriptor: its state, its number and its single target port.
fn group_descriptor(port: u16) -> Vec<u8> {
    let [hi, lo] = port.to_be_bytes();
    vec![
        ACTIVE_OPTIMIZED,
        SUPPORTED_STATES,
        hi,
        lo,
        0,
        0, // STATUS CODE: no status available
        0,
        1, // TARGET PORT COUNT
        0,
        0,
        hi,
        lo,
    ]
}

impl Device {
    /// The RELATIVE TARGET PORT IDENTIFIER of the port `nexus` comes through (1 until the
    /// transport says otherwise).
    pub(crate) fn target_port_of(&self, nexus: NexusId) -> u16 {
        self.lock().target_ports.get(&nexus).copied().unwrap_or(1)
    }

    /// Sets the number of target ports (portal groups) the logical unit is reached through,
    /// numbered 1 to `count`.
    pub fn set_target_port_count(&self, count: u16) {
        self.lock().port_count = count.max(1);
    }

    /// Records the relative target port (the portal group tag) of an I_T nexus.
    pub fn bind_target_port(&self, nexus: NexusId, port: u16) {
        self.lock().target_ports.insert(nexus, port);
    }

    /// The target port designators of VPD 83h for the port `nexus` comes through: its relative
    /// target port identifier and its target port group.
    pub(crate) fn port_designators(&self, nexus: NexusId) -> Vec<u8> {
        let port = self.target_port_of(nexus);
        let mut d = port_designator(TYPE_RELATIVE_PORT, port);
        d.extend(port_designator(TYPE_PORT_GROUP, port));
        d
    }

    /// REPORT TARGET PORT GROUPS: one group per target port, all active/optimized, in the
    /// length-only (000b) or extended (001b) header format.
    pub(crate) fn report_target_port_groups(&self, req: &Request) -> CmdResult {
        let format = byte(req.cdb, 1) >> 5;
        if format > EXTENDED_FORMAT {
            return Err(Sense::invalid_cdb(1, Some(7)).into());
        }
        let alloc = be32(req.cdb, 6) as usize;
        let count = self.lock().port_count;
        let body: Vec<u8> = (1..=count).flat_map(group_descriptor).collect();
        let mut d = Vec::with_capacity(8 + body.len());
        if format == EXTENDED_FORMAT {
            d.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
            d.extend_from_slice(&[0x10, TRANSITION_TIME, 0, 0]);
        } else {
            d.extend_from_slice(&(body.len() as u32).to_be_bytes());
        }
        d.extend(body);
        Ok(clip(d, alloc))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn rtpg(format: u8, alloc: u32) -> [u8; 12] {
        let mut c = [0xA3, (format << 5) | 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        c[6..10].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    #[test]
    fn one_group_per_port_all_active_optimized() {
        let (_, d) = dev();
        let data = good(run(&d, &rtpg(0, 1024), &[]));
        assert_eq!(data, vec![0, 0, 0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        d.set_target_port_count(2);
        let data = good(run(&d, &rtpg(1, 1024), &[]));
        assert_eq!(&data[..8], &[0, 0, 0, 28, 0x10, 0, 0, 0]);
        assert_eq!(&data[8..20], &[0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(&data[20..32], &[0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(good(run(&d, &rtpg(1, 6), &[])).len(), 6);
    }

    #[test]
    fn rtpg_field_checks() {
        let (_, d) = dev();
        assert_invalid_cdb(&run(&d, &rtpg(2, 64), &[]), 1, Some(7));
        let mut c = rtpg(0, 64);
        c[1] |= 0x80;
        assert_invalid_cdb(&run(&d, &c, &[]), 1, Some(7));
        let mut c = rtpg(0, 64);
        c[2] = 1;
        assert_invalid_cdb(&run(&d, &c, &[]), 2, Some(0));
    }

    #[test]
    fn designators_name_the_nexus_port() {
        let (_, d) = dev();
        d.set_target_port_count(2);
        d.bind_target_port(N2, 2);
        assert_eq!(
            d.port_designators(N1),
            vec![0x51, 0x94, 0, 4, 0, 0, 0, 1, 0x51, 0x95, 0, 4, 0, 0, 0, 1]
        );
        assert_eq!(&d.port_designators(N2)[6..8], &[0, 2]);
        assert_eq!(&d.port_designators(N2)[14..16], &[0, 2]);
    }
}
