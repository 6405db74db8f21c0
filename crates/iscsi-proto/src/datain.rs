//! Command completion (RFC 7143 11.4, 11.7): Data-In PDUs split at the
//! initiator's MaxRecvDataSegmentLength and MaxBurstLength, status phase
//! collapsed into the last Data-In when possible, otherwise a SCSI Response
//! with sense data; residual overflow/underflow for reads, writes and
//! bidirectional commands.

use std::sync::Arc;

use iscsi_wire::{DataIn, ScsiResponse};

use crate::connection::{Connection, RESERVED_TAG};
use crate::session::TaskState;
use crate::types::{DataRef, ScsiResult};

/// The data of a read result: copied into each PDU, or shared by slices.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Plain(&'a [u8]),
    Shared(&'a Arc<Vec<u8>>),
}

/// SCSI status GOOD.
const GOOD: u8 = 0x00;

/// Fixed-format sense data (SPC-4 4.5.3), current error.
pub(crate) fn sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut s = vec![0u8; 18];
    s[0] = 0x70;
    s[2] = key & 0x0f;
    s[7] = 10;
    s[12] = asc;
    s[13] = ascq;
    s
}

/// Residual of `actual` against `expected`: (overflow, underflow, count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Residual {
    pub overflow: bool,
    pub underflow: bool,
    pub count: u32,
}

impl Residual {
    pub fn of(expected: u32, actual: u64) -> Self {
        let expected = u64::from(expected);
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        if actual > expected {
            Residual {
                overflow: true,
                underflow: false,
                count: clamp(actual - expected),
            }
        } else if actual < expected {
            Residual {
                overflow: false,
                underflow: true,
                count: clamp(expected - actual),
            }
        } else {
            Residual::default()
        }
    }
}

impl Connection {
    /// Send the Data-In and/or SCSI Response for a finished task.
    pub(crate) fn send_result(&mut self, t: &TaskState, r: ScsiResult) {
        let read_len = t.read_len();
        let data_len = r.data_in.len() as u64;
        let read_res = Residual::of(read_len, data_len);
        let write_res = if t.write {
            Residual::of(t.edtl, u64::from(r.data_out_wanted))
        } else {
            Residual::default()
        };
        let sent = usize::try_from(data_len.min(u64::from(read_len))).unwrap_or(0);
        let (main, bidi) = if t.bidi() {
            (write_res, read_res)
        } else if t.write {
            (write_res, Residual::default())
        } else {
            (read_res, Residual::default())
        };
        let collapse = sent > 0 && r.sense.is_empty() && !t.bidi() && r.status == GOOD;
        let status = collapse.then_some((r.status, main));
        let pdus = if self.shared_data_in && sent > 0 {
            let buf = Arc::new(r.data_in);
            self.send_data_in(t, Payload::Shared(&buf), sent, status)
        } else {
            self.send_data_in(t, Payload::Plain(&r.data_in), sent, status)
        };
        if collapse {
            return;
        }
        let resp = ScsiResponse {
            bidi_overflow: bidi.overflow,
            bidi_underflow: bidi.underflow,
            overflow: main.overflow,
            underflow: main.underflow,
            response: 0,
            status: r.status,
            itt: t.itt,
            snack_tag: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn(),
            max_cmd_sn: self.max_cmd_sn(),
            exp_data_sn: pdus,
            bidi_residual: bidi.count,
            residual: main.count,
        };
        let data = if r.sense.is_empty() {
            Vec::new()
        } else {
            let n = r.sense.len().min(usize::from(u16::MAX) - 2);
            let mut d = Vec::with_capacity(n + 2);
            d.extend_from_slice(&u16::try_from(n).unwrap_or(0).to_be_bytes());
            d.extend_from_slice(&r.sense[..n]);
            d
        };
        self.send(resp, data);
    }

    /// Send the first `len` bytes of `data` as Data-In PDUs; with `status` the last one carries
    /// it (S bit). Returns the number of PDUs sent.
    fn send_data_in(
        &mut self,
        t: &TaskState,
        data: Payload<'_>,
        len: usize,
        status: Option<(u8, Residual)>,
    ) -> u32 {
        let seg = usize::try_from(self.neg.params.initiator_mrdsl.max(512)).unwrap_or(8192);
        let burst = usize::try_from(self.neg.params.max_burst.max(512)).unwrap_or(262_144);
        let mut off = 0usize;
        let mut in_burst = 0usize;
        let mut data_sn = 0u32;
        while off < len {
            let n = seg.min(len - off).min(burst - in_burst);
            let last = off + n == len;
            in_burst += n;
            let end_of_burst = last || in_burst == burst;
            if end_of_burst {
                in_burst = 0;
            }
            let st = if last { status } else { None };
            let (stat, res) = st.unwrap_or_default();
            let pdu = DataIn {
                final_: end_of_burst,
                ack: false,
                overflow: res.overflow,
                underflow: res.underflow,
                status_present: st.is_some(),
                status: stat,
                lun: t.lun_raw,
                itt: t.itt,
                ttt: RESERVED_TAG,
                stat_sn: if st.is_some() { self.next_stat_sn() } else { 0 },
                exp_cmd_sn: self.exp_cmd_sn(),
                max_cmd_sn: self.max_cmd_sn(),
                data_sn,
                buffer_offset: u32::try_from(off).unwrap_or(u32::MAX),
                residual: res.count,
            };
            match data {
                Payload::Plain(d) => self.send(pdu, d[off..off + n].to_vec()),
                Payload::Shared(b) => self.send_shared(pdu, DataRef::new(b.clone(), off, n)),
            }
            data_sn = data_sn.wrapping_add(1);
            off += n;
        }
        data_sn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_math() {
        assert_eq!(Residual::of(512, 512), Residual::default());
        assert_eq!(
            Residual::of(512, 200),
            Residual {
                overflow: false,
                underflow: true,
                count: 312
            }
        );
        assert_eq!(
            Residual::of(0, 36),
            Residual {
                overflow: true,
                underflow: false,
                count: 36
            }
        );
    }

    #[test]
    fn fixed_sense() {
        let s = sense(0x0b, 0x47, 0x05);
        assert_eq!(s.len(), 18);
        assert_eq!(&s[..3], &[0x70, 0, 0x0b]);
        assert_eq!(s[7], 10);
        assert_eq!((s[12], s[13]), (0x47, 0x05));
    }
}
