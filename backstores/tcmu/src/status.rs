//! Handler status codes (`TCMU_STS_*`) turned into what the rest of ustgt understands:
//! [`io::Error`]s for the block-store interface (whose errno scsi-core maps onto sense), and
//! the SCSI status plus fixed-format sense that libtcmu's command completion produces, for
//! commands whose sense a handler builds itself (`handle_cmd` passthrough).

use std::ffi::c_int;
use std::io;

use crate::abi::{sts, SENSE_BUFFERSIZE};

/// SCSI status GOOD.
pub const GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const CHECK_CONDITION: u8 = 0x02;
/// SCSI status BUSY.
pub const BUSY: u8 = 0x08;
/// SCSI status TASK SET FULL.
pub const TASK_SET_FULL: u8 = 0x28;

/// The name of a status, for logs.
pub fn name(status: c_int) -> &'static str {
    match status {
        sts::ASYNC_HANDLED => "ASYNC_HANDLED",
        sts::NOT_HANDLED => "NOT_HANDLED",
        sts::OK => "OK",
        sts::NO_RESOURCE => "NO_RESOURCE",
        sts::PASSTHROUGH_ERR => "PASSTHROUGH_ERR",
        sts::BUSY => "BUSY",
        sts::WR_ERR => "WR_ERR",
        sts::RD_ERR => "RD_ERR",
        sts::MISCOMPARE => "MISCOMPARE",
        sts::INVALID_CMD => "INVALID_CMD",
        sts::INVALID_CDB => "INVALID_CDB",
        sts::TIMEOUT => "TIMEOUT",
        sts::FENCED => "FENCED",
        sts::HW_ERR => "HW_ERR",
        sts::RANGE => "RANGE",
        _ => "other",
    }
}

/// The error a failed block operation returns. Read and write errors become EIO (MEDIUM
/// ERROR with the read or write ASC, as libtcmu reports them); busy, no-resource and time-out
/// statuses keep their own errno; everything else is a target failure (EREMOTEIO: HARDWARE
/// ERROR).
pub fn to_io_error(status: c_int) -> io::Error {
    let errno = match status {
        sts::RD_ERR | sts::WR_ERR => libc::EIO,
        sts::BUSY => libc::EBUSY,
        sts::NO_RESOURCE => libc::ENOMEM,
        sts::TIMEOUT => libc::ETIMEDOUT,
        sts::RANGE | sts::INVALID_CDB | sts::INVALID_CMD | sts::NOT_HANDLED => libc::EINVAL,
        sts::MISCOMPARE => libc::EILSEQ,
        sts::FENCED => libc::ESHUTDOWN,
        _ => libc::EREMOTEIO,
    };
    io::Error::from_raw_os_error(errno)
}

/// Turns `status` into `Ok(())` or its error.
pub fn check(status: c_int) -> io::Result<()> {
    if status == sts::OK {
        Ok(())
    } else {
        Err(to_io_error(status))
    }
}

/// Sense key and ASC/ASCQ of the statuses libtcmu builds sense for, and whether the handler
/// already put INFORMATION or key-specific bytes into the buffer that must be kept.
fn sense_of(status: c_int) -> Option<(u8, u16, bool)> {
    const ILLEGAL: u8 = 0x05;
    const NOT_READY: u8 = 0x02;
    const MEDIUM: u8 = 0x03;
    const HARDWARE: u8 = 0x04;
    const UNIT_ATTENTION: u8 = 0x06;
    const COPY_ABORTED: u8 = 0x0A;
    const MISCOMPARE: u8 = 0x0E;
    Some(match status {
        sts::RANGE => (ILLEGAL, 0x2100, false),
        sts::HW_ERR => (HARDWARE, 0x4400, false),
        sts::MISCOMPARE => (MISCOMPARE, 0x1D00, true),
        sts::RD_ERR => (MEDIUM, 0x1100, false),
        sts::WR_ERR => (MEDIUM, 0x0C00, false),
        sts::INVALID_CDB => (ILLEGAL, 0x2400, false),
        sts::INVALID_PARAM_LIST => (ILLEGAL, 0x2600, false),
        sts::INVALID_PARAM_LIST_LEN => (ILLEGAL, 0x1A00, false),
        sts::NOTSUPP_SEG_DESC_TYPE => (ILLEGAL, 0x2609, false),
        sts::NOTSUPP_TGT_DESC_TYPE => (ILLEGAL, 0x2607, false),
        sts::TOO_MANY_SEG_DESC => (ILLEGAL, 0x2608, false),
        sts::TOO_MANY_TGT_DESC => (ILLEGAL, 0x2606, false),
        sts::CP_TGT_DEV_NOTCONN => (COPY_ABORTED, 0x0D02, false),
        sts::INVALID_CP_TGT_DEV_TYPE => (COPY_ABORTED, 0x0D03, false),
        sts::CAPACITY_CHANGED => (UNIT_ATTENTION, 0x2A09, false),
        sts::TRANSITION => (NOT_READY, 0x040A, false),
        sts::IMPL_TRANSITION_ERR => (UNIT_ATTENTION, 0x2A07, false),
        sts::EXPL_TRANSITION_ERR => (HARDWARE, 0x670A, false),
        sts::FENCED => (NOT_READY, 0x040B, false),
        sts::WR_ERR_INCOMPAT_FRMT => (ILLEGAL, 0x3005, false),
        sts::NOTSUPP_SAVE_PARAMS => (ILLEGAL, 0x3900, false),
        sts::FRMT_IN_PROGRESS => (NOT_READY, 0x0404, true),
        sts::NOT_HANDLED | sts::INVALID_CMD => (ILLEGAL, 0x2000, false),
        _ => return None,
    })
}

/// The SCSI status of a finished command, filling `sense` as libtcmu's completion does:
/// GOOD, TASK SET FULL, BUSY, or CHECK CONDITION with fixed-format sense (the buffer as the
/// handler left it for PASSTHROUGH_ERR and unknown statuses).
pub fn complete(status: c_int, sense: &mut [u8; SENSE_BUFFERSIZE]) -> u8 {
    match status {
        sts::OK => return GOOD,
        sts::NO_RESOURCE => return TASK_SET_FULL,
        sts::BUSY | sts::TIMEOUT => return BUSY,
        sts::PASSTHROUGH_ERR => return CHECK_CONDITION,
        _ => {}
    }
    if let Some((key, asc, keep)) = sense_of(status) {
        if !keep {
            sense.fill(0);
        }
        sense[0] |= 0x70;
        sense[2] = key;
        sense[7] = 0x0A;
        sense[12..14].copy_from_slice(&asc.to_be_bytes());
    }
    CHECK_CONDITION
}

/// `tcmu_sense_set_data`: zeroes the buffer and sets fixed-format sense; returns
/// PASSTHROUGH_ERR, which handlers return as their status.
pub fn set_data(sense: &mut [u8], key: u8, asc_ascq: u16) -> c_int {
    sense.fill(0);
    if sense.len() >= 14 {
        sense[0] |= 0x70;
        sense[2] = key;
        sense[7] = 0x0A;
        sense[12..14].copy_from_slice(&asc_ascq.to_be_bytes());
    }
    sts::PASSTHROUGH_ERR
}

/// `tcmu_sense_set_info`: zeroes the first 18 bytes and sets a valid INFORMATION field.
pub fn set_info(sense: &mut [u8], info: u32) {
    if sense.len() < 18 {
        return;
    }
    sense[..18].fill(0);
    sense[0] = 0x80;
    sense[3..7].copy_from_slice(&info.to_be_bytes());
}

/// `tcmu_sense_set_key_specific_info`: zeroes the first 18 bytes and sets SKSV plus the
/// two key-specific bytes (a progress indication).
pub fn set_key_specific(sense: &mut [u8], info: u16) {
    if sense.len() < 18 {
        return;
    }
    sense[..18].fill(0);
    sense[15] |= 0x80;
    sense[16..18].copy_from_slice(&info.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_write_errors_are_eio() {
        assert_eq!(to_io_error(sts::RD_ERR).raw_os_error(), Some(libc::EIO));
        assert_eq!(to_io_error(sts::WR_ERR).raw_os_error(), Some(libc::EIO));
        assert_eq!(to_io_error(sts::BUSY).raw_os_error(), Some(libc::EBUSY));
        assert_eq!(
            to_io_error(sts::HW_ERR).raw_os_error(),
            Some(libc::EREMOTEIO)
        );
        assert_eq!(to_io_error(99).raw_os_error(), Some(libc::EREMOTEIO));
        assert!(check(sts::OK).is_ok());
        assert!(check(sts::RD_ERR).is_err());
    }

    #[test]
    fn statuses_without_sense() {
        let mut s = [7u8; SENSE_BUFFERSIZE];
        assert_eq!(complete(sts::OK, &mut s), GOOD);
        assert_eq!(complete(sts::NO_RESOURCE, &mut s), TASK_SET_FULL);
        assert_eq!(complete(sts::BUSY, &mut s), BUSY);
        assert_eq!(complete(sts::TIMEOUT, &mut s), BUSY);
        assert_eq!(s, [7u8; SENSE_BUFFERSIZE], "buffer untouched");
    }

    #[test]
    fn read_error_builds_medium_error() {
        let mut s = [0xFFu8; SENSE_BUFFERSIZE];
        assert_eq!(complete(sts::RD_ERR, &mut s), CHECK_CONDITION);
        assert_eq!(
            &s[..18],
            &[0x70, 0, 3, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0]
        );
        assert!(s[18..].iter().all(|&b| b == 0));
        complete(sts::NOT_HANDLED, &mut s);
        assert_eq!((s[2], s[12], s[13]), (5, 0x20, 0));
        complete(sts::FENCED, &mut s);
        assert_eq!((s[2], s[12], s[13]), (2, 0x04, 0x0B));
    }

    #[test]
    fn miscompare_keeps_the_information_field() {
        let mut s = [0u8; SENSE_BUFFERSIZE];
        set_info(&mut s, 0x1234);
        assert_eq!(complete(sts::MISCOMPARE, &mut s), CHECK_CONDITION);
        assert_eq!(s[0], 0xF0, "VALID bit kept, response code 70h");
        assert_eq!(&s[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!((s[2], s[7], s[12], s[13]), (0x0E, 10, 0x1D, 0));
    }

    #[test]
    fn format_in_progress_keeps_the_progress() {
        let mut s = [0u8; SENSE_BUFFERSIZE];
        set_key_specific(&mut s, 0x8000);
        complete(sts::FRMT_IN_PROGRESS, &mut s);
        assert_eq!((s[2], s[12], s[13]), (2, 4, 4));
        assert_eq!(&s[15..18], &[0x80, 0x80, 0x00]);
    }

    #[test]
    fn passthrough_uses_the_handler_sense() {
        let mut s = [0u8; SENSE_BUFFERSIZE];
        s[5] = 9;
        assert_eq!(set_data(&mut s, 5, 0x2100), sts::PASSTHROUGH_ERR);
        assert_eq!(s[5], 0, "set_data zeroes the buffer");
        let copy = s;
        assert_eq!(complete(sts::PASSTHROUGH_ERR, &mut s), CHECK_CONDITION);
        assert_eq!(s, copy);
        assert_eq!((s[0], s[2], s[7], s[12], s[13]), (0x70, 5, 10, 0x21, 0));
    }

    #[test]
    fn unknown_status_leaves_sense_alone() {
        let mut s = [3u8; SENSE_BUFFERSIZE];
        assert_eq!(complete(sts::NO_LOCK_HOLDERS, &mut s), CHECK_CONDITION);
        assert_eq!(s, [3u8; SENSE_BUFFERSIZE]);
        assert_eq!(name(sts::HW_ERR), "HW_ERR");
        assert_eq!(name(1000), "other");
    }
}
