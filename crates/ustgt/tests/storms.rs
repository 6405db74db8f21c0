//! Limits under attack and churn: connections cut at any byte of any PDU (login, commands,
//! immediate and unsolicited data, an R2T sequence, Data-Out), reconnect storms with I/O in
//! flight, session reinstatement racing writes, slowloris logins, login and session limits,
//! dead peers, unanswered R2Ts. After each, the server's gauges (connections, logins,
//! sessions, tasks, write data reserved, buffers, store I/O) return to zero and its open
//! descriptors to their count at start; no write of an old session lands after the new one's.

mod probe;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use probe::{pattern, Target};
use ustgt_initiator::wire::{
    encode, encode_text, Bhs, DataOut, DigestConfig, LoginRequest, LogoutRequest, Pdu, ScsiCommand,
};
use ustgt_initiator::{cdb, LoginError, ScsiRequest, Session, CHECK_CONDITION};

const BS: u32 = 512;
const SETTLE: Duration = Duration::from_secs(20);

/// Assert that the server returns to nothing alive and `fds` descriptors.
fn assert_settles(t: &Target, fds: usize) {
    let (g, n) = t.settle(fds, SETTLE);
    assert!(g.is_idle(), "gauges did not return to zero: {g:?}");
    assert_eq!(n, fds, "open descriptors: {n}, {fds} at start");
}

// ----- cuts at every byte ----------------------------------------------------------------

/// One PDU of the cut script: its bytes and a name.
struct Piece {
    name: &'static str,
    bytes: Vec<u8>,
}

fn piece(name: &'static str, pdu: Pdu) -> Piece {
    let mut bytes = Vec::new();
    encode(&pdu, DigestConfig::default(), &mut bytes);
    Piece { name, bytes }
}

fn login_pdu(isid: [u8; 6], csg: u8, itt: u32, keys: &[(String, String)]) -> Pdu {
    let req = LoginRequest {
        transit: true,
        csg,
        nsg: if csg == 0 { 1 } else { 3 },
        isid,
        itt,
        cmd_sn: 1,
        ..LoginRequest::default()
    };
    Pdu::new(req, encode_text(keys))
}

fn command(
    itt: u32,
    cmd_sn: u32,
    cdb: [u8; 16],
    write: bool,
    edtl: u32,
    final_: bool,
) -> ScsiCommand {
    ScsiCommand {
        final_,
        read: !write,
        write,
        attr: 1,
        itt,
        cmd_sn,
        expected_data_len: edtl,
        cdb,
        ..ScsiCommand::default()
    }
}

fn data_out(itt: u32, ttt: u32, data_sn: u32, offset: u32, final_: bool, len: usize) -> Pdu {
    let d = DataOut {
        final_,
        itt,
        ttt,
        data_sn,
        buffer_offset: offset,
        ..DataOut::default()
    };
    Pdu::new(d, pattern(offset, len))
}

/// A whole session as bytes, independent of the target's answers: login (two stages), a TEST
/// UNIT READY (which takes the unit attention of the new nexus), a write with immediate and
/// unsolicited data, a write solicited by one R2T (the connection's first
/// target transfer tag is 1) answered in two Data-Out PDUs, a read, a logout.
fn script(t: &Target, isid: [u8; 6]) -> Vec<Piece> {
    let opts = t.normal();
    let security: Vec<(String, String)> = [
        ("InitiatorName", opts.initiator_name.as_str()),
        ("SessionType", "Normal"),
        ("TargetName", t.iqn.as_str()),
        ("AuthMethod", "None"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut tur = command(0x0f, 1, [0; 16], false, 0, true);
    tur.read = false;
    let c1 = command(0x10, 2, cdb::write16(0, 8), true, 4096, false);
    let c2 = command(0x11, 3, cdb::write16(64, 256), true, 128 * 1024, true);
    let c3 = command(0x12, 4, cdb::read16(0, 8), false, 4096, true);
    let logout = LogoutRequest {
        itt: 0x13,
        cmd_sn: 5,
        ..LogoutRequest::default()
    };
    vec![
        piece("login 1", login_pdu(isid, 0, 0, &security)),
        piece("login 2", login_pdu(isid, 1, 1, &opts.operational_keys())),
        piece("test unit ready", Pdu::new(tur, Vec::new())),
        piece("write", Pdu::new(c1, pattern(0, 1024))),
        piece(
            "unsolicited data",
            data_out(0x10, 0xffff_ffff, 0, 1024, true, 3072),
        ),
        piece("solicited write", Pdu::new(c2, Vec::new())),
        piece("data-out 1", data_out(0x11, 1, 0, 0, false, 65536)),
        piece("data-out 2", data_out(0x11, 1, 1, 65536, true, 65536)),
        piece("read", Pdu::new(c3, Vec::new())),
        piece("logout", Pdu::new(logout, Vec::new())),
    ]
}

/// Cut points: every byte of each header, and the start, middle and last byte of each data
/// segment (absolute offsets into the script).
fn cut_points(pieces: &[Piece]) -> Vec<(usize, String)> {
    let mut cuts = Vec::new();
    let mut at = 0;
    for p in pieces {
        for k in 0..48 {
            cuts.push((at + k, format!("{} header byte {k}", p.name)));
        }
        let data = p.bytes.len() - 48;
        if data > 0 {
            for k in [1, data / 2, data - 1] {
                cuts.push((at + 48 + k, format!("{} data byte {k}", p.name)));
            }
        }
        at += p.bytes.len();
    }
    cuts
}

/// Send `bytes`, then close: gracefully (the target sees the bytes, then the end of the
/// stream, and closes in turn) or abruptly (with unread replies the close is a reset).
fn cut_connection(addr: &str, bytes: &[u8], abrupt: bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The target may have closed already (a refused login): errors end the exchange too.
    if s.write_all(bytes).is_err() || abrupt {
        std::thread::sleep(Duration::from_millis(2));
        return;
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn the_whole_script_runs() {
    let t = Target::start(&["--nop-interval-ms", "0", "ram:16M"]);
    let bytes: Vec<u8> = script(&t, [0x80, 0, 0, 0, 0, 1])
        .into_iter()
        .flat_map(|p| p.bytes)
        .collect();
    let mut conn = ustgt_initiator::Connection::connect(t.addr.as_str(), Duration::from_secs(5))
        .expect("connect");
    conn.send_raw(&bytes).expect("send");
    let seen = conn.wait_closed(Duration::from_secs(10)).expect("closed");
    let kinds: Vec<&str> = seen
        .iter()
        .map(|p| match &p.bhs {
            Bhs::LoginResponse(_) => "login",
            Bhs::ScsiResponse(_) => "response",
            Bhs::R2t(_) => "r2t",
            Bhs::DataIn(_) => "data-in",
            Bhs::LogoutResponse(_) => "logout",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["login", "login", "response", "response", "r2t", "response", "data-in", "logout"],
        "the script must drive the full session"
    );
    for (i, p) in seen.iter().enumerate() {
        if let Bhs::ScsiResponse(r) = &p.bhs {
            let want = if i == 2 { CHECK_CONDITION } else { 0 };
            assert_eq!(r.status, want, "response {i}: {r:?}");
        }
    }
    let mut want = pattern(0, 1024);
    want.extend(pattern(1024, 3072));
    assert!(seen[6].data == want, "the read returns the write's data");
}

#[test]
fn cuts_at_any_byte_of_any_pdu_leak_nothing() {
    let t = Target::start(&["--workers", "2", "--nop-interval-ms", "0", "ram:16M"]);
    let fds = t.baseline_fds();
    let pieces = script(&t, [0x80, 0, 0, 0, 0, 2]);
    let cuts = cut_points(&pieces);
    let all: Vec<u8> = pieces.iter().flat_map(|p| p.bytes.clone()).collect();
    std::thread::scope(|scope| {
        for lane in 0..4usize {
            let (t, cuts, all) = (&t, &cuts, &all);
            scope.spawn(move || {
                for (i, (at, what)) in cuts.iter().enumerate().skip(lane).step_by(4) {
                    let mut bytes = all[..*at].to_vec();
                    // Every cut its own session (ISID), so cuts do not reinstate each other.
                    if bytes.len() >= 14 {
                        bytes[13] = i as u8;
                        bytes[12] = (i >> 8) as u8 | 0x40;
                    }
                    let _ = what;
                    cut_connection(&t.addr, &bytes, i % 3 == 0);
                }
            });
        }
    });
    assert!(cuts.len() > 400, "{} cut points", cuts.len());
    assert_settles(&t, fds);
    // Still serving.
    let mut s = t.login(t.normal());
    let out = s.write16(0, 0, &pattern(9, 4096), BS).expect("write");
    assert!(out.good(), "{}", out.describe());
}

// ----- reinstatement ---------------------------------------------------------------------

#[test]
fn reinstatement_never_lets_an_old_write_land_after_the_new_one() {
    // Two loops: the old session is the first connection (loop 0), the new one the second
    // (loop 1). Every store operation takes 300 ms, so the old session's three writes keep its
    // loop busy for about a second while the new session logs in on the other loop.
    let t = Target::start(&[
        "--workers",
        "2",
        "--nop-interval-ms",
        "0",
        "ram:16M,inject-delay-ms=300",
    ]);
    let fds = t.baseline_fds();
    let opts = t.normal();
    let mut old = t.login(opts.clone());
    for k in 0..3u32 {
        let req = ScsiRequest::write(0, &cdb::write16(0, 8), pattern(100 + k, 4096));
        old.submit(req).expect("old write");
    }
    // A write waiting for Data-Out: 64 KiB unsolicited, the rest solicited and never sent.
    let mut waiting = ScsiRequest::write(0, &cdb::write16(100, 256), pattern(200, 128 * 1024));
    waiting.collect_r2ts = Some(Duration::from_secs(60));
    old.submit(waiting).expect("old write waiting for data");
    std::thread::sleep(Duration::from_millis(100));

    let mut new = t.login(opts);
    let new_data = pattern(300, 4096);
    let out = new.write16(0, 0, &new_data, BS).expect("new write");
    assert!(out.good(), "{}", out.describe());
    // The old connection was closed by the reinstatement.
    assert!(old.wait_closed(Duration::from_secs(10)).is_ok());
    drop(old);
    std::thread::sleep(Duration::from_millis(300));
    let got = new.read16(0, 0, 8, BS).expect("read");
    assert!(
        got.data_in == new_data,
        "an old write landed after the new session's write"
    );
    let got = new.read16(0, 100, 256, BS).expect("read");
    assert!(
        got.data_in.iter().all(|&b| b == 0),
        "the old write waiting for Data-Out must never land"
    );
    new.logout().expect("logout");
    assert_settles(&t, fds);
}

// ----- reconnect storm -------------------------------------------------------------------

/// One storm step of lane `lane` (its own ISID and region): what it does depends on `step`.
fn storm_step(t: &Target, isid: [u8; 6], lane: u32, step: u32, prev: &mut Option<Session>) {
    let mut opts = t.normal();
    opts.isid = isid;
    // A live previous session of this lane is reinstated by this login.
    let mut s = t.login(opts);
    drop(prev.take());
    let lba = u64::from(lane) * 1024;
    let data = pattern(lane * 1000 + step, 8192);
    let out = s.write16(0, lba, &data, BS).expect("write");
    assert!(out.good(), "{}", out.describe());
    let got = s.read16(0, lba, 16, BS).expect("read");
    assert!(got.data_in == data, "lane {lane} step {step}: data differs");
    match step % 4 {
        0 => {
            s.logout().expect("logout");
        }
        1 => {
            // Cut with a write waiting for R2T data.
            let mut req =
                ScsiRequest::write(0, &cdb::write16(lba + 64, 256), pattern(1, 128 * 1024));
            req.collect_r2ts = Some(Duration::from_secs(60));
            s.submit(req).expect("submit");
            std::thread::sleep(Duration::from_millis(5));
        }
        2 => {
            // Cut with commands in flight.
            for k in 0..4u64 {
                let req = ScsiRequest::read(0, &cdb::read16(lba + k * 16, 16), 8192);
                s.submit(req).expect("submit");
            }
        }
        _ => *prev = Some(s),
    }
}

#[test]
fn reconnect_storms_with_io_in_flight_leak_nothing() {
    let t = Target::start(&["--workers", "2", "--nop-interval-ms", "0", "ram:64M"]);
    let fds = t.baseline_fds();
    std::thread::scope(|scope| {
        for lane in 0..6u32 {
            let t = &t;
            scope.spawn(move || {
                let isid = [0x80, 0x11, 0, 0, 0, lane as u8];
                let mut prev = None;
                for step in 0..24 {
                    storm_step(t, isid, lane, step, &mut prev);
                }
            });
        }
    });
    assert_settles(&t, fds);
}

// ----- timers ------------------------------------------------------------------------------

/// True when the target closes `s` within `limit` (reads return end of stream or reset).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slowloris_in_login_and_after_it_is_closed() {
    let t = Target::start(&[
        "--login-timeout-ms",
        "500",
        "--nop-interval-ms",
        "300",
        "--nop-timeout-ms",
        "300",
        "ram:16M",
    ]);
    let fds = t.baseline_fds();
    // Half a BHS, then silence.
    let mut raw = TcpStream::connect(t.addr.as_str()).expect("connect");
    raw.write_all(&[0x43; 20]).expect("send");
    assert!(
        closed_within(&mut raw, Duration::from_secs(5)),
        "login slowloris still open"
    );
    // Logged in, then half a BHS and silence: the NOP-In ping goes unanswered.
    let s = t.login(t.normal());
    let mut conn = s.into_connection().expect("connection");
    conn.send_raw(&[0x01; 20]).expect("send");
    let (mut stream, _) = conn.into_stream().expect("stream");
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)),
        "silent peer still open"
    );
    assert_settles(&t, fds);
}

#[test]
fn a_peer_that_stops_answering_nop_in_is_dropped_one_that_answers_stays() {
    let t = Target::start(&[
        "--nop-interval-ms",
        "300",
        "--nop-timeout-ms",
        "300",
        "ram:16M",
    ]);
    let mut dead = t.login(t.normal());
    let mut alive = t.login(t.normal());
    // `alive` keeps reading (and so answering pings) for 1.5 s; `dead` reads nothing.
    alive.timeout = Duration::from_millis(1500);
    let waited = alive.wait_for("nothing", |_| false);
    assert!(waited.is_err_and(|e| e.is_timeout()));
    alive.timeout = Duration::from_secs(5);
    let seen = dead
        .wait_closed(Duration::from_secs(5))
        .expect("dead peer closed");
    assert!(
        seen.iter()
            .any(|p| matches!(p.bhs, Bhs::NopIn(ref n) if n.ttt != 0xffff_ffff)),
        "a NOP-In ping came first: {seen:?}"
    );
    let out = alive.test_unit_ready(0).expect("still served");
    assert!(out.good(), "{}", out.describe());
}

#[test]
fn unanswered_r2ts_end_the_command_with_initiator_response_timeout() {
    let t = Target::start(&["--data-out-timeout-ms", "500", "ram:16M"]);
    let fds = t.baseline_fds();
    let mut s = t.login(
        t.normal()
            .key("InitialR2T", "Yes")
            .key("ImmediateData", "No"),
    );
    let mut req = ScsiRequest::write(0, &cdb::write16(1000, 16), pattern(5, 8192));
    req.collect_r2ts = Some(Duration::from_secs(30));
    let out = s
        .scsi(req)
        .expect("an answer before the initiator sends anything");
    assert_eq!(out.status, CHECK_CONDITION, "{}", out.describe());
    let sense = out.sense.expect("sense");
    assert_eq!((sense.key, sense.asc, sense.ascq), (0x0b, 0x4b, 0x06));
    // The session goes on; nothing of the write landed.
    let got = s.read16(0, 1000, 16, BS).expect("read");
    assert!(got.data_in.iter().all(|&b| b == 0));
    assert_eq!(t.gauges().tasks, 0);
    s.logout().expect("logout");
    assert_settles(&t, fds);
}

// ----- admission -------------------------------------------------------------------------

#[test]
fn logins_beyond_the_host_and_portal_limits_are_closed_at_accept() {
    let t = Target::start(&["--max-logins-per-host", "3", "ram:16M"]);
    let fds = t.baseline_fds();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(t.addr.as_str()).expect("connect"))
        .collect();
    wait_for_logins(&t, 3);
    let mut extra = TcpStream::connect(t.addr.as_str()).expect("connect");
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "fourth login not closed"
    );
    assert_eq!(t.gauges().refused, 1);
    // A connection leaving login makes room; logged-in sessions do not count.
    drop(held.remove(0));
    wait_for_logins(&t, 2);
    let mut s = t.login(t.normal());
    let mut s2 = t.login(t.normal());
    s2.logout().expect("logout");
    s.logout().expect("logout");
    drop(held);
    assert_settles(&t, fds);

    let t = Target::start(&["--max-logins-per-portal", "2", "ram:16M"]);
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(t.addr.as_str()).expect("connect"))
        .collect();
    wait_for_logins(&t, 2);
    let mut extra = TcpStream::connect(t.addr.as_str()).expect("connect");
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "third login not closed"
    );
}

fn wait_for_logins(t: &Target, n: u64) {
    for _ in 0..100 {
        if t.gauges().logins == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never {n} connections in login: {:?}", t.gauges());
}

#[test]
fn sessions_beyond_the_limit_are_refused_with_out_of_resources() {
    let t = Target::start(&["--max-sessions", "2", "ram:16M"]);
    let fds = t.baseline_fds();
    let a_opts = t.normal();
    let a = t.login(a_opts.clone());
    let mut b = t.login(t.normal());
    match Session::login(t.addr.as_str(), t.normal()) {
        Err(LoginError::Status { class, detail, .. }) => assert_eq!((class, detail), (3, 2)),
        Err(e) => panic!("expected status 0x0302, got {e}"),
        Ok(_) => panic!("a third session was admitted"),
    }
    // A reinstatement replaces a session: admitted at the limit.
    let mut a2 = t.login(a_opts);
    drop(a);
    // Discovery sessions count too.
    b.logout().expect("logout");
    let mut d = Session::login(t.addr.as_str(), ustgt_initiator::LoginOptions::discovery())
        .expect("discovery");
    assert!(Session::login(t.addr.as_str(), t.normal()).is_err());
    assert_eq!(t.gauges().sessions, 2);
    d.logout().expect("logout");
    a2.logout().expect("logout");
    assert_settles(&t, fds);
}
