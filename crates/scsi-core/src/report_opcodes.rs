//! REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): all commands, or one command with its CDB
//! usage data, with optional command timeouts descriptors; REPORT SUPPORTED TASK MANAGEMENT
//! FUNCTIONS (SPC-4 6.36).

use crate::cdb::{be16, be32, byte, clip};
use crate::opcodes::{self, has_service_action, CmdInfo, COMMANDS};
use crate::sense::{CmdResult, Sense};
use crate::{Device, Request};

/// Recommended command timeout reported in timeouts descriptors, in seconds.
const RECOMMENDED_TIMEOUT: u32 = 60;

/// The 12-byte command timeouts descriptor.
fn timeouts() -> Vec<u8> {
    let mut d = vec![0, 0x0A, 0, 0, 0, 0, 0, 0];
    d.extend_from_slice(&RECOMMENDED_TIMEOUT.to_be_bytes());
    d
}

/// One command descriptor of the all-commands format.
fn descriptor(c: &CmdInfo, rctd: bool) -> Vec<u8> {
    let sa = u16::from(c.sa.unwrap_or(0));
    let mut d = vec![c.opcode, 0];
    d.extend_from_slice(&sa.to_be_bytes());
    d.push(0);
    d.push(if rctd { 0x02 } else { 0 } | u8::from(c.sa.is_some()));
    d.extend_from_slice(&(c.usage.len() as u16).to_be_bytes());
    if rctd {
        d.extend(timeouts());
    }
    d
}

/// One-command format: SUPPORT 011b with the usage data, or 001b when not supported.
fn one_command(c: Option<&CmdInfo>, rctd: bool) -> Vec<u8> {
    match c {
        Some(c) => {
            let mut d = vec![0, if rctd { 0x80 } else { 0 } | 0x03];
            d.extend_from_slice(&(c.usage.len() as u16).to_be_bytes());
            d.extend_from_slice(c.usage);
            if rctd {
                d.extend(timeouts());
            }
            d
        }
        None => vec![0, 0x01, 0, 0],
    }
}

/// Task management functions the transport carries out: ABORT TASK, ABORT TASK SET, CLEAR TASK
/// SET, LOGICAL UNIT RESET, QUERY TASK and TARGET RESET (byte 0 of the parameter data)...
const SUPPORTED_TMFS: u8 = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02;
/// ... and QUERY TASK SET (byte 1; not QUERY ASYNCHRONOUS EVENT nor I_T NEXUS RESET).
const SUPPORTED_TMFS_1: u8 = 0x02;

impl Device {
    /// REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: the 4-byte format, or the 16-byte extended
    /// format when REPD is set. An allocation length below 4 is an error (SPC-4 6.36.1).
    pub(crate) fn report_supported_tmfs(&self, req: &Request) -> CmdResult {
        let repd = byte(req.cdb, 2) & 0x80 != 0;
        let alloc = be32(req.cdb, 6) as usize;
        if alloc < 4 {
            return Err(Sense::invalid_cdb(6, None).into());
        }
        let mut d = vec![SUPPORTED_TMFS, SUPPORTED_TMFS_1, 0, 0];
        if repd {
            d[3] = 0x0C;
            d.resize(16, 0);
        }
        Ok(clip(d, alloc))
    }

    /// REPORT SUPPORTED OPERATION CODES.
    pub(crate) fn report_supported_opcodes(&self, req: &Request) -> CmdResult {
        let rctd = byte(req.cdb, 2) & 0x80 != 0;
        let options = byte(req.cdb, 2) & 0x07;
        let opcode = byte(req.cdb, 3);
        let sa = be16(req.cdb, 4);
        let alloc = be32(req.cdb, 6) as usize;
        let features = self.features();
        let has_sa = has_service_action(opcode);
        let find = |sa: u16| {
            u8::try_from(sa)
                .ok()
                .and_then(|sa| opcodes::find(opcode, sa, features).ok())
        };
        let data = match options {
            0 => {
                let mut body = Vec::new();
                for c in COMMANDS.iter().filter(|c| features.offers(c)) {
                    body.extend(descriptor(c, rctd));
                }
                let mut d = (body.len() as u32).to_be_bytes().to_vec();
                d.extend(body);
                d
            }
            1 if has_sa => return Err(Sense::invalid_cdb(2, Some(2)).into()),
            1 => one_command(find(0), rctd),
            2 if !has_sa => return Err(Sense::invalid_cdb(2, Some(2)).into()),
            2 | 3 => one_command(find(if has_sa { sa } else { 0 }), rctd),
            _ => return Err(Sense::invalid_cdb(2, Some(2)).into()),
        };
        Ok(clip(data, alloc))
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;

    fn rsoc(opts: u8, opcode: u8, sa: u16) -> [u8; 12] {
        let mut c = [0xA3, 0x0C, opts, opcode, 0, 0, 0, 0, 0x10, 0, 0, 0];
        c[4..6].copy_from_slice(&sa.to_be_bytes());
        c
    }

    #[test]
    fn all_commands() {
        let (_, d) = dev();
        let data = good(run(&d, &rsoc(0, 0, 0), &[]));
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert_eq!(len, data.len() - 4);
        assert_eq!(len % 8, 0);
        assert_eq!(&data[4..12], &[0x00, 0, 0, 0, 0, 0, 0, 6]);
        let descs: Vec<&[u8]> = data[4..].chunks(8).collect();
        let rc16 = descs.iter().find(|d| d[0] == 0x9E && d[3] == 0x10).unwrap();
        assert_eq!(rc16[5], 0x01);
        assert_eq!(&rc16[6..8], &[0, 16]);
        let with_t = good(run(&d, &rsoc(0x80, 0, 0), &[]));
        assert_eq!(with_t.len() - 4, len / 8 * 20);
        assert_eq!(
            &with_t[4..24],
            &[0, 0, 0, 0, 0, 2, 0, 6, 0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60]
        );
    }

    #[test]
    fn supported_tmfs() {
        let (_, d) = dev();
        let mut c = [0xA3, 0x0D, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0];
        assert_eq!(good(run(&d, &c, &[])), vec![0xDE, 0x02, 0, 0]);
        c[2] = 0x80;
        let ext = good(run(&d, &c, &[]));
        assert_eq!(ext.len(), 16);
        assert_eq!(&ext[..4], &[0xDE, 0x02, 0, 0x0C]);
        c[9] = 3;
        assert_invalid_cdb(&run(&d, &c, &[]), 6, None);
        c[2] = 0x40;
        c[9] = 4;
        assert_invalid_cdb(&run(&d, &c, &[]), 2, Some(6));
    }

    #[test]
    fn sanitize_is_reported_only_when_allowed() {
        let (_, d) = dev();
        assert_eq!(good(run(&d, &rsoc(2, 0x48, 1), &[])), vec![0, 1, 0, 0]);
        let (_, s) = dev_with(64, 512, |c| c.sanitize = true);
        for sa in [1u16, 2, 3, 0x1F] {
            let data = good(run(&s, &rsoc(2, 0x48, sa), &[]));
            assert_eq!(&data[..6], &[0, 3, 0, 10, 0x48, 0xA0 | sa as u8], "sa {sa}");
        }
        let data = good(run(&d, &rsoc(1, 0x9C, 0), &[]));
        assert_eq!(&data[..6], &[0, 3, 0, 16, 0x9C, 0xF8]);
    }

    #[test]
    fn one_command_forms() {
        let (_, d) = dev();
        let data = good(run(&d, &rsoc(1, 0x28, 0), &[]));
        assert_eq!(&data[..4], &[0, 3, 0, 10]);
        assert_eq!(
            &data[4..],
            &[0x28, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F, 0xFF, 0xFF, 0x07]
        );
        assert_eq!(good(run(&d, &rsoc(1, 0xC5, 0), &[])), vec![0, 1, 0, 0]);
        assert_invalid_cdb(&run(&d, &rsoc(1, 0x9E, 0x10), &[]), 2, Some(2));
        let data = good(run(&d, &rsoc(2, 0x9E, 0x10), &[]));
        assert_eq!(&data[..6], &[0, 3, 0, 16, 0x9E, 0x10]);
        assert_eq!(good(run(&d, &rsoc(2, 0x9E, 0x1F), &[])), vec![0, 1, 0, 0]);
        assert_invalid_cdb(&run(&d, &rsoc(2, 0x28, 0), &[]), 2, Some(2));
        let data = good(run(&d, &rsoc(0x81, 0x2A, 0), &[]));
        assert_eq!(data[1], 0x83);
        assert_eq!(data.len(), 4 + 10 + 12);
        assert_invalid_cdb(&run(&d, &rsoc(5, 0x28, 0), &[]), 2, Some(2));
    }
}
