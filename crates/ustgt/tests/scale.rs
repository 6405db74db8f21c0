//! Scale: 1,000 idle sessions (logged in, then silent) and, beside them, 200 sessions doing
//! verified I/O at once, served within the memory README.md ("Limits") states per idle
//! connection and per busy session. The server's resident memory (/proc/PID/status VmRSS) is
//! sampled throughout; every session's data is read back and compared.

mod probe;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Duration;

use probe::{pattern, Target};
use ustgt_initiator::{cdb, ScsiRequest, Session};

/// Idle sessions.
const IDLE: usize = 1000;
/// Sessions doing I/O at once.
const BUSY: usize = 200;
/// README.md "Limits": resident memory per idle connection, KiB.
const IDLE_KIB: u64 = 32;
/// README.md "Limits": resident memory per busy session at queue depth 4 with 16 KiB
/// commands (the data in flight included), KiB.
const BUSY_KIB: u64 = 256;
/// Threads logging the sessions in.
const LOGIN_THREADS: usize = 8;
/// Block size, and each busy session's region of the LUN.
const BS: u32 = 512;
const REGION: usize = 64 * 1024;
/// Commands per round of a busy session, and their size.
const QD: usize = 4;
const CHUNK: usize = REGION / QD;
const ROUNDS: u32 = 4;

/// `n` sessions logged in by a few threads.
fn login_many(t: &Target, n: usize) -> Vec<Session> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..LOGIN_THREADS)
            .map(|k| {
                let count = n / LOGIN_THREADS + usize::from(k < n % LOGIN_THREADS);
                scope.spawn(move || (0..count).map(|_| t.login(t.normal())).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("login thread"))
            .collect()
    })
}

/// One busy session: `ROUNDS` rounds of QD writes of its region then QD reads, verified.
fn busy(s: &mut Session, idx: usize) {
    let base = (idx * REGION) as u64 / u64::from(BS);
    let blocks = (CHUNK / BS as usize) as u32;
    for round in 0..ROUNDS {
        let seed = |k: usize| (idx as u32) * 1000 + round * 10 + k as u32;
        let mut itts = Vec::new();
        for k in 0..QD {
            let lba = base + (k * CHUNK) as u64 / u64::from(BS);
            let req = ScsiRequest::write(0, &cdb::write16(lba, blocks), pattern(seed(k), CHUNK));
            itts.push(s.submit(req).expect("submit write"));
        }
        for itt in itts.drain(..) {
            let out = s.wait(itt).expect("write");
            assert!(out.good(), "session {idx}: write: {}", out.describe());
        }
        for k in 0..QD {
            let lba = base + (k * CHUNK) as u64 / u64::from(BS);
            let req = ScsiRequest::read(0, &cdb::read16(lba, blocks), CHUNK as u32);
            itts.push(s.submit(req).expect("submit read"));
        }
        for (k, itt) in itts.drain(..).enumerate() {
            let out = s.wait(itt).expect("read");
            assert!(out.good(), "session {idx}: read: {}", out.describe());
            assert!(
                out.data_in == pattern(seed(k), CHUNK),
                "session {idx} round {round} chunk {k}: data differs"
            );
        }
    }
}

#[test]
fn thousand_idle_and_two_hundred_busy_sessions_within_the_stated_memory() {
    let want = (IDLE + BUSY) as u64 + 256;
    let limit = probe::raise_fd_limit(want);
    assert!(limit >= want, "open file limit {limit}: {want} needed");
    let t = Target::start(&["--workers", "2", "--nop-interval-ms", "0", "ram:256M"]);
    let base = t.rss_kib();

    let idle = login_many(&t, IDLE);
    let g = t.gauges();
    assert_eq!(
        (g.connections, g.sessions),
        (IDLE as u64, IDLE as u64),
        "{g:?}"
    );
    let after_idle = t.rss_kib();
    let per_idle = after_idle.saturating_sub(base) as f64 / IDLE as f64;
    eprintln!(
        "scale: base {base} KiB, {IDLE} idle sessions {after_idle} KiB ({per_idle:.1} KiB each)"
    );

    let mut sessions = login_many(&t, BUSY);
    let peak = AtomicU64::new(0);
    let running = AtomicBool::new(true);
    let start = Barrier::new(BUSY);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(t.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let workers: Vec<_> = sessions
            .iter_mut()
            .enumerate()
            .map(|(i, s)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    busy(s, i);
                })
            })
            .collect();
        for w in workers {
            w.join().expect("busy session");
        }
        running.store(false, Ordering::Relaxed);
    });
    let peak = peak.load(Ordering::Relaxed).max(t.rss_kib());
    let data_kib = t.status_kib("RssShmem");
    let per_busy = peak.saturating_sub(after_idle + data_kib) as f64 / BUSY as f64;
    eprintln!(
        "scale: peak {peak} KiB with {BUSY} busy sessions ({data_kib} KiB of LUN data, \
         {per_busy:.1} KiB per busy session)"
    );
    let bound = base + IDLE as u64 * IDLE_KIB + BUSY as u64 * BUSY_KIB + data_kib;
    assert!(
        after_idle <= base + IDLE as u64 * IDLE_KIB,
        "{IDLE} idle sessions: {after_idle} KiB, more than {base} + {IDLE} x {IDLE_KIB} KiB"
    );
    assert!(
        peak <= bound,
        "peak {peak} KiB above the stated bound {bound} KiB"
    );

    let fds = t.fds();
    assert!(
        fds >= IDLE + BUSY,
        "{fds} descriptors for {} sessions",
        IDLE + BUSY
    );
    for mut s in sessions.into_iter().chain(idle) {
        s.logout().expect("logout");
    }
    let (g, left) = t.settle(fds - IDLE - BUSY, Duration::from_secs(20));
    assert!(g.is_idle(), "after logout: {g:?}");
    assert_eq!(left, fds - IDLE - BUSY, "descriptors after logout");
}
