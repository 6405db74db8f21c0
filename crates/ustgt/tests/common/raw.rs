//! Helpers of the hostile-input tests (`hostile_*.rs`): a server with one RAM LUN, logins
//! that consume the first unit attention, expectations on exactly what the target answers
//! (a Reject with its reason and quoted header, a login status, silence, a closed
//! connection), and the check every such test ends with: a fresh session still logs in and
//! does a WRITE and READ round trip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ustgt_initiator::wire::{
    encode_text, lun_from_index, Bhs, LoginRequest, LoginResponse, Pdu, RawBhs, ScsiCommand,
    BHS_LEN,
};
use ustgt_initiator::{
    cdb, Connection, LoginError, LoginOptions, ScsiOutcome, ScsiRequest, Session,
};

use super::Server;

/// Block size of the test LUN.
pub const BS: u32 = 512;
/// How long "silence" is awaited.
pub const QUIET: Duration = Duration::from_millis(700);
/// How long an answer is awaited.
pub const WAIT: Duration = Duration::from_secs(5);

/// `ustgt serve` with one 16 MiB RAM LUN on an ephemeral loopback port.
pub fn start() -> Server {
    Server::start(&["--listen", "127.0.0.1:0", "ram:16M"])
}

/// `ustgt serve` with these extra arguments before the LUN specs.
pub fn start_with(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Server::start(&all)
}

/// Options of a normal session to the server's first target.
pub fn normal(srv: &Server) -> LoginOptions {
    LoginOptions::normal(&srv.iqn())
}

/// Log in and consume the unit attention every new I_T nexus starts with.
pub fn login(srv: &Server, opts: LoginOptions) -> Session {
    let normal = opts.target_name.is_some();
    let mut s =
        Session::login(srv.addr().as_str(), opts).unwrap_or_else(|e| panic!("login: {e} ({e:?})"));
    s.timeout = WAIT;
    if normal {
        s.clear_unit_attention(0)
            .expect("TEST UNIT READY after login");
    }
    s
}

/// A TCP connection to the portal, nothing sent yet.
pub fn connect(srv: &Server) -> Connection {
    Connection::connect(srv.addr().as_str(), WAIT).expect("connect")
}

/// Deterministic test data.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Assert GOOD status and no protocol violations.
pub fn ok(out: &ScsiOutcome) {
    assert!(out.good(), "command failed: {}", out.describe());
    assert!(
        out.violations.is_empty(),
        "protocol violations: {}",
        out.describe()
    );
}

/// Assert CHECK CONDITION with this sense key, ASC and ASCQ.
pub fn sense(out: &ScsiOutcome, key: u8, asc: u8, ascq: u8) {
    let s = out.sense.as_ref().map(|s| (s.key, s.asc, s.ascq));
    assert_eq!(
        (out.response, out.status, s),
        (0, 0x02, Some((key, asc, ascq))),
        "{}",
        out.describe()
    );
}

/// WRITE(16) of `data` at `lba`, asserting GOOD.
pub fn write(s: &mut Session, lba: u64, data: &[u8]) {
    ok(&s.write16(0, lba, data, BS).expect("WRITE(16)"));
}

/// READ(16) at `lba`, asserting GOOD and the content.
pub fn read_back(s: &mut Session, lba: u64, expect: &[u8]) {
    let out = s
        .read16(0, lba, expect.len() as u32 / BS, BS)
        .expect("READ(16)");
    ok(&out);
    assert!(out.data_in == expect, "read back differs at LBA {lba}");
}

/// The server process is still running.
pub fn assert_alive(srv: &mut Server) {
    let st = srv.child.try_wait().expect("wait");
    assert!(st.is_none(), "the server exited: {st:?}");
}

/// The end of every hostile test: the server runs, and a fresh session logs in and does a
/// WRITE then READ round trip (on its own LBA range, so tests do not disturb each other).
pub fn fresh_round_trip(srv: &mut Server) {
    let opts = normal(srv);
    fresh_round_trip_as(srv, opts);
}

/// [`fresh_round_trip`] for a session logging in with `opts` (e.g. with CHAP).
pub fn fresh_round_trip_as(srv: &mut Server, opts: LoginOptions) {
    static ROUND: AtomicU64 = AtomicU64::new(0);
    assert_alive(srv);
    let n = ROUND.fetch_add(1, Ordering::Relaxed);
    let lba = 30_000 + (n % 64) * 16;
    let data = pattern(0xfeed + n as u32, 8 * BS as usize);
    let mut s = login(srv, opts);
    write(&mut s, lba, &data);
    read_back(&mut s, lba, &data);
    assert!(s.anomalies.is_empty(), "anomalies: {:#?}", s.anomalies);
    assert_eq!(s.logout().expect("logout").response, 0);
}

/// The next PDU, failing the test with `what` on anything else than a PDU.
pub fn next(s: &mut Session, what: &str) -> Pdu {
    s.recv_pdu(WAIT)
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"))
}

/// The next PDU must be a Reject with this reason; returns the quoted header.
pub fn expect_reject(s: &mut Session, reason: u8) -> RawBhs {
    let pdu = next(s, "a Reject");
    reject_of(&pdu, reason)
}

/// `pdu` is a Reject with this reason quoting one BHS; returns that header.
pub fn reject_of(pdu: &Pdu, reason: u8) -> RawBhs {
    let Bhs::Reject(r) = &pdu.bhs else {
        panic!("expected a Reject with reason {reason:#04x}, got {pdu:?}")
    };
    assert_eq!(r.reason, reason, "Reject reason: {r:?}");
    assert_eq!(pdu.data.len(), BHS_LEN, "a Reject quotes exactly one BHS");
    let mut h = [0u8; BHS_LEN];
    h.copy_from_slice(&pdu.data);
    RawBhs(h)
}

/// Nothing at all arrives for a while.
pub fn expect_silence(s: &mut Session) {
    match s.recv_pdu(QUIET) {
        Err(e) if e.is_timeout() => {}
        other => panic!("expected silence, got {other:?}"),
    }
}

/// The target closes the connection; returns what it sent first.
pub fn expect_closed(s: &mut Session) -> Vec<Pdu> {
    s.wait_closed(WAIT)
        .unwrap_or_else(|e| panic!("the target did not close the connection: {e}"))
}

/// The target closes a raw connection; returns what it sent first.
pub fn expect_conn_closed(c: &mut Connection, within: Duration) -> Vec<Pdu> {
    c.wait_closed(within)
        .unwrap_or_else(|e| panic!("the target did not close the connection: {e}"))
}

/// A login that must fail with this status class and detail; the target then closes.
pub fn expect_login_status(
    res: Result<Session, LoginError>,
    class: u8,
    detail: u8,
) -> LoginResponse {
    match res {
        Err(LoginError::Status {
            class: c,
            detail: d,
            response,
            keys,
        }) => {
            assert_eq!((c, d), (class, detail), "login status; keys {keys:?}");
            assert!(keys.is_empty(), "keys in a failed login response: {keys:?}");
            response
        }
        Err(e) => panic!("expected login status {class:#04x}/{detail:#04x}, got {e}"),
        Ok(_) => panic!("login succeeded; expected status {class:#04x}/{detail:#04x}"),
    }
}

/// A Login Request header for a new session with this ISID.
pub fn login_req(isid: [u8; 6], csg: u8, nsg: u8, transit: bool, cont: bool) -> LoginRequest {
    LoginRequest {
        transit,
        cont,
        csg,
        nsg: if transit { nsg } else { 0 },
        version_max: 0,
        version_min: 0,
        isid,
        tsih: 0,
        itt: 0x4c00_0000,
        cid: 0,
        cmd_sn: 1,
        exp_stat_sn: 0,
    }
}

/// `key=value\0...` of these pairs.
pub fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let owned: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    encode_text(&owned)
}

/// The identity keys of the first Login Request of a normal session to `iqn`.
pub fn identity(iqn: &str) -> Vec<u8> {
    identity_with(iqn, "None")
}

/// The identity keys of a first Login Request offering these authentication methods.
pub fn identity_with(iqn: &str, auth_methods: &str) -> Vec<u8> {
    text(&[
        ("InitiatorName", "iqn.2026-11.io.ustgt:hostile"),
        ("SessionType", "Normal"),
        ("TargetName", iqn),
        ("AuthMethod", auth_methods),
    ])
}

/// Send one Login Request and return the Login Response that answers it.
pub fn login_exchange(
    c: &mut Connection,
    req: LoginRequest,
    data: Vec<u8>,
) -> (LoginResponse, Vec<u8>) {
    c.send(&Pdu::new(req, data)).expect("send login request");
    let pdu = c
        .recv(WAIT)
        .unwrap_or_else(|e| panic!("waiting for a Login Response: {e}"));
    match pdu.bhs {
        Bhs::LoginResponse(r) => (r, pdu.data),
        other => panic!("expected a Login Response, got {other:?}"),
    }
}

/// Send a Login Request that must fail with this status; the target then closes.
pub fn expect_login_reject(
    c: &mut Connection,
    req: LoginRequest,
    data: Vec<u8>,
    class: u8,
    detail: u8,
) {
    let (r, keys) = login_exchange(c, req, data);
    assert_eq!(
        (r.status_class, r.status_detail),
        (class, detail),
        "login status: {r:?}"
    );
    assert!(keys.is_empty(), "keys in a failed login response");
    let after = expect_conn_closed(c, WAIT);
    assert!(after.is_empty(), "PDUs after a login reject: {after:?}");
}

/// A SCSI command header for hand-built tests (CDB padded to 16 bytes), taking the next
/// CmdSN.
pub fn command(
    s: &mut Session,
    cdb_bytes: &[u8],
    read: bool,
    write: bool,
    edtl: u32,
) -> ScsiCommand {
    let mut c = [0u8; 16];
    c[..cdb_bytes.len()].copy_from_slice(cdb_bytes);
    ScsiCommand {
        immediate: false,
        final_: true,
        read,
        write,
        attr: 1,
        lun: lun_from_index(0),
        itt: s.alloc_itt(),
        expected_data_len: edtl,
        cmd_sn: s.take_cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        cdb: c,
    }
}

/// Run one command through the initiator's normal path.
pub fn scsi(s: &mut Session, req: ScsiRequest) -> ScsiOutcome {
    s.scsi(req)
        .unwrap_or_else(|e| panic!("command failed to complete: {e}"))
}

/// WRITE(16) CDB bytes.
pub fn write16(lba: u64, blocks: u32) -> Vec<u8> {
    cdb::write16(lba, blocks).to_vec()
}

/// Open file descriptors of the server process.
pub fn open_fds(srv: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", srv.child.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of the server process in KiB.
pub fn rss_kib(srv: &Server) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", srv.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Wait until `f` holds (checking every 50 ms) or the time is up; returns the last result.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
