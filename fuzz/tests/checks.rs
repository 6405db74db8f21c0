//! The session harness's write checks (`src/session_writes.rs`) accept what the engine may do
//! and catch what it must not: R2Ts out of sequence, beyond the expected length, for no
//! waiting write, continued by a completion, over the write budget; Data-Out timeouts too
//! early, twice, with the wrong sense, or with the timeout off.

use std::panic::{catch_unwind, AssertUnwindSafe};

use iscsi_wire::{R2t, ScsiCommand};
use ustgt_fuzz::session_writes::{Tmf, Writes};

const TMF: Tmf = Tmf {
    epoch: 0,
    settled: true,
};
const BUDGET: u64 = 64 << 10;
const TIMEOUT: u64 = 500;

fn write_cmd(itt: u32, edtl: u32) -> ScsiCommand {
    ScsiCommand {
        final_: true,
        write: true,
        itt,
        expected_data_len: edtl,
        ..ScsiCommand::default()
    }
}

fn r2t(itt: u32, sn: u32, offset: u32, len: u32) -> R2t {
    R2t {
        itt,
        ttt: sn + 1,
        r2t_sn: sn,
        buffer_offset: offset,
        desired_len: len,
        ..R2t::default()
    }
}

/// Writes with one 8 KiB write (tag 1, no immediate data) fed at time 0.
fn one_write() -> Writes {
    let mut w = Writes::new(BUDGET, TIMEOUT);
    w.built(0, 1, 8192, 0, 0);
    w.fed(&write_cmd(1, 8192), 0);
    w
}

fn fails(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

/// Fixed sense data of a SCSI Response (with its SenseLength).
fn sense(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[1] = 18;
    s[2] = 0x70;
    s[4] = key;
    s[9] = 10;
    s[14] = asc;
    s[15] = ascq;
    s
}

#[test]
fn r2t_sequences() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut w = one_write();
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    w.r2t(&r2t(1, 1, 4096, 4096), 0, TMF);
    assert!(
        fails(|| one_write().r2t(&r2t(1, 1, 0, 4096), 0, TMF)),
        "no sequence"
    );
    assert!(
        fails(|| one_write().r2t(&r2t(2, 0, 0, 4096), 0, TMF)),
        "no command"
    );
    assert!(
        fails(|| one_write().r2t(&r2t(1, 0, 512, 4096), 0, TMF)),
        "offset"
    );
    assert!(
        fails(|| one_write().r2t(&r2t(1, 0, 0, 8193), 0, TMF)),
        "past EDTL"
    );
    let mut w = one_write();
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    assert!(fails(|| w.r2t(&r2t(1, 2, 4096, 4096), 0, TMF)), "R2TSN gap");
    let mut w = one_write();
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    assert!(
        fails(|| w.r2t(&r2t(1, 0, 0, 4096), 0, TMF)),
        "second sequence"
    );
    let _ = std::panic::take_hook();
}

#[test]
fn r2ts_of_completions_and_the_budget() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut w = one_write();
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    w.begin_completion();
    assert!(fails(|| w.r2t(&r2t(1, 1, 4096, 4096), 0, TMF)), "continued");
    let mut w = one_write();
    w.begin_completion();
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    w.r2t(&r2t(1, 1, 4096, 4096), 0, TMF);
    w.end_completion();
    let mut w = Writes::new(BUDGET, TIMEOUT);
    for itt in [1, 2] {
        w.built(itt as usize, itt, 40 << 10, 0, 0);
        w.fed(&write_cmd(itt, 40 << 10), 0);
    }
    w.r2t(&r2t(1, 0, 0, 4096), 0, TMF);
    assert!(
        fails(|| w.r2t(&r2t(2, 0, 0, 4096), 0, TMF)),
        "over the budget"
    );
    let _ = std::panic::take_hook();
}

#[test]
fn data_out_timeouts() {
    std::panic::set_hook(Box::new(|_| {}));
    let timed_out = sense(0x0b, 0x4b, 0x06);
    let mut w = one_write();
    w.r2t(&r2t(1, 0, 0, 4096), 100, TMF);
    assert!(
        fails(|| one_write().timed_out(1, &timed_out, 499)),
        "too early"
    );
    let mut early = one_write();
    early.r2t(&r2t(1, 0, 0, 4096), 100, TMF);
    assert!(
        fails(|| early.timed_out(1, &timed_out, 599)),
        "too early after an R2T"
    );
    w.timed_out(1, &timed_out, 600);
    assert!(fails(|| w.timed_out(1, &timed_out, 1200)), "twice");
    let wrong = sense(0x0b, 0x4b, 0x00);
    assert!(fails(|| one_write().timed_out(1, &wrong, 600)), "sense");
    assert!(
        fails(|| one_write().timed_out(2, &timed_out, 600)),
        "not a write"
    );
    let mut off = Writes::new(BUDGET, 0);
    off.fed(&write_cmd(1, 8192), 0);
    assert!(fails(|| off.timed_out(1, &timed_out, 600)), "timeout off");
    let _ = std::panic::take_hook();
}
