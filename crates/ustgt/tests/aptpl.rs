//! Persistent reservations with APTPL survive a restart of the server (--state-dir).
mod common;
use common::Server;
use ustgt_initiator::{LoginOptions, ScsiRequest, Session};

fn login(addr: &str, iqn: &str, isid: [u8; 6]) -> Session {
    let mut o = LoginOptions::normal(iqn);
    o.initiator_name = "iqn.2026-11.io.example:host-a".into();
    o.isid = isid;
    let mut s = Session::login(addr, o).expect("login");
    s.clear_unit_attention(0).expect("tur");
    s
}

fn prout(s: &mut Session, sa: u8, kind: u8, key: u64, sa_key: u64, flags: u8) -> u8 {
    let mut p = key.to_be_bytes().to_vec();
    p.extend_from_slice(&sa_key.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, flags, 0, 0, 0]);
    let cdb = [0x5F, sa, kind, 0, 0, 0, 0, 0, 24, 0];
    s.scsi(ScsiRequest::write(0, &cdb, p))
        .expect("prout")
        .status
}

fn prin(s: &mut Session, sa: u8) -> Vec<u8> {
    let cdb = [0x5E, sa, 0, 0, 0, 0, 0, 0x10, 0, 0];
    let o = s.scsi(ScsiRequest::read(0, &cdb, 4096)).expect("prin");
    assert_eq!(o.status, 0, "{}", o.describe());
    o.data_in
}

#[test]
fn aptpl_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("scsi6-aptpl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let isid = [0x40, 0, 0, 0, 0, 0x11];
    {
        let srv = Server::start(&["--listen", "127.0.0.1:0", "--state-dir", d, "ram:16M"]);
        let mut s = login(&srv.addr(), &srv.iqn(), isid);
        assert_eq!(prin(&mut s, 2)[2..4], [0x01, 0x80]);
        assert_eq!(prout(&mut s, 0, 0, 0, 0xAB, 0x01), 0);
        assert_eq!(prout(&mut s, 1, 3, 0xAB, 0, 0), 0);
        let fs = prin(&mut s, 3);
        let name = "iqn.2026-11.io.example:host-a,i,0x400000000011";
        assert_eq!(&fs[36..36 + name.len()], name.as_bytes(), "{fs:?}");
        srv.stop();
    }
    let srv = Server::start(&["--listen", "127.0.0.1:0", "--state-dir", d, "ram:16M"]);
    // Another initiator port: EXCLUSIVE ACCESS held by host-a conflicts.
    let mut other = login(&srv.addr(), &srv.iqn(), [0x40, 0, 0, 0, 0, 0x22]);
    let read = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    assert_eq!(
        other.scsi(ScsiRequest::read(0, &read, 512)).unwrap().status,
        0x18
    );
    assert_eq!(prin(&mut other, 2)[2..4], [0x01, 0x81]);
    let rr = prin(&mut other, 1);
    assert_eq!(&rr[8..16], &0xABu64.to_be_bytes());
    let mut a = login(&srv.addr(), &srv.iqn(), isid);
    assert_eq!(a.scsi(ScsiRequest::read(0, &read, 512)).unwrap().status, 0);
    assert_eq!(prout(&mut a, 3, 0, 0xAB, 0, 0), 0);
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
