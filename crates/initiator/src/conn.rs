//! One TCP connection: PDU framing with the negotiated digests, deliberate corruption,
//! raw bytes, and receive with a timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use iscsi_wire::{encode, Decoder, DecoderConfig, DigestConfig, Pdu, BHS_LEN};

use crate::{Error, Result};

/// Which parts of an encoded PDU to damage before sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Corrupt {
    /// Flip a bit of the header digest (or, without header digests, of the BHS's last byte).
    pub header_digest: bool,
    /// Flip a bit of the data digest (or, without data digests, of the last data byte).
    pub data_digest: bool,
}

/// A connection to a target: sends and receives whole PDUs.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    decoder: Decoder,
    digests: DigestConfig,
    /// Received bytes not yet handed to the decoder.
    pending: Vec<u8>,
}

impl Connection {
    /// Connect (within `timeout`) to the first address `addr` resolves to.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Connection> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(Connection {
                        stream,
                        decoder: Decoder::new(DecoderConfig::default()),
                        digests: DigestConfig::default(),
                        pending: Vec::new(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.map_or_else(
            || Error::Protocol("address resolves to nothing".into()),
            Error::from,
        ))
    }

    /// Use these digests for both directions from the next PDU on.
    pub fn set_digests(&mut self, digests: DigestConfig) {
        self.digests = digests;
        let mut cfg = self.decoder.config();
        cfg.digests = digests;
        self.decoder.set_config(cfg);
    }

    /// The digests in use.
    pub fn digests(&self) -> DigestConfig {
        self.digests
    }

    /// Largest data segment accepted from the target (our MaxRecvDataSegmentLength).
    pub fn set_max_recv(&mut self, len: u32) {
        let mut cfg = self.decoder.config();
        cfg.max_data_segment = len;
        self.decoder.set_config(cfg);
    }

    /// The wire form of `pdu` with the connection's digests, damaged as `corrupt` says.
    pub fn encode(&self, pdu: &Pdu, corrupt: Corrupt) -> Vec<u8> {
        let mut out = Vec::new();
        encode(pdu, self.digests, &mut out);
        if corrupt.header_digest {
            let ahs = pdu.ahs.len().div_ceil(4) * 4;
            let at = if self.digests.header {
                BHS_LEN + ahs
            } else {
                BHS_LEN - 1
            };
            if let Some(b) = out.get_mut(at) {
                *b ^= 0x01;
            }
        }
        if corrupt.data_digest && !pdu.data.is_empty() {
            let at = if self.digests.data {
                out.len() - 4
            } else {
                out.len() - 1 - (4 - pdu.data.len() % 4) % 4
            };
            if let Some(b) = out.get_mut(at) {
                *b ^= 0x01;
            }
        }
        out
    }

    /// Send one PDU with correct digests.
    pub fn send(&mut self, pdu: &Pdu) -> Result<()> {
        self.send_corrupted(pdu, Corrupt::default())
    }

    /// Send one PDU, damaged as `corrupt` says.
    pub fn send_corrupted(&mut self, pdu: &Pdu, corrupt: Corrupt) -> Result<()> {
        let bytes = self.encode(pdu, corrupt);
        self.send_raw(&bytes)
    }

    /// Send arbitrary bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Receive the next PDU, waiting at most `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Pdu> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(pdu) = self.decode_pending()? {
                return Ok(pdu);
            }
            self.fill(deadline)?;
        }
    }

    /// Receive PDUs until the target closes the connection; returns what arrived before.
    /// Fails with [`Error::Timeout`] if the connection is still open after `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<Vec<Pdu>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(pdu) => seen.push(pdu),
                Err(Error::Closed) => return Ok(seen),
                Err(Error::Timeout(_)) => {
                    return Err(Error::Timeout(format!(
                        "the target to close the connection (PDUs seen: {seen:?})"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Give up the connection for raw use elsewhere (e.g. a non-blocking load loop): the
    /// socket and the received bytes not yet decoded. Fails with [`Error::Protocol`] while part
    /// of a PDU is buffered in the decoder, since those bytes could not be handed over.
    pub fn into_stream(self) -> Result<(TcpStream, Vec<u8>)> {
        if !self.decoder.is_idle() {
            return Err(Error::Protocol(
                "a partly received PDU is buffered in the decoder".into(),
            ));
        }
        Ok((self.stream, self.pending))
    }

    /// Close our side (both directions).
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn decode_pending(&mut self) -> Result<Option<Pdu>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        match self.decoder.decode(&self.pending) {
            Ok((used, pdu)) => {
                self.pending.drain(..used);
                Ok(pdu)
            }
            Err(e) => {
                let used = self.decoder.last_consumed();
                self.pending.drain(..used);
                Err(Error::Wire(e))
            }
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout("a PDU".into()));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => Err(Error::Closed),
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
            Err(e) => match Error::from(e) {
                Error::Timeout(_) => Err(Error::Timeout("a PDU".into())),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iscsi_wire::{Bhs, NopIn, NopOut};
    use std::net::TcpListener;

    fn pair() -> (Connection, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let c = Connection::connect(addr, Duration::from_secs(2)).expect("connect");
        let (s, _) = l.accept().expect("accept");
        (c, s)
    }

    fn nop_out() -> Pdu {
        Pdu::new(
            NopOut {
                immediate: true,
                itt: 7,
                ttt: 0xffff_ffff,
                ..NopOut::default()
            },
            vec![1, 2, 3, 4, 5],
        )
    }

    #[test]
    fn corruption_flips_exactly_the_digest_bytes() {
        let (mut c, _s) = pair();
        c.set_digests(DigestConfig {
            header: true,
            data: true,
        });
        let good = c.encode(&nop_out(), Corrupt::default());
        assert_eq!(good.len(), 48 + 4 + 8 + 4);
        let hd = c.encode(
            &nop_out(),
            Corrupt {
                header_digest: true,
                data_digest: false,
            },
        );
        let diff: Vec<usize> = (0..good.len()).filter(|&i| good[i] != hd[i]).collect();
        assert_eq!(diff, vec![48]);
        let dd = c.encode(
            &nop_out(),
            Corrupt {
                header_digest: false,
                data_digest: true,
            },
        );
        let diff: Vec<usize> = (0..good.len()).filter(|&i| good[i] != dd[i]).collect();
        assert_eq!(diff, vec![good.len() - 4]);
    }

    #[test]
    fn into_stream_hands_over_undecoded_bytes_only_at_a_pdu_boundary() {
        let (mut c, mut s) = pair();
        let mut bytes = Vec::new();
        let pdu = Pdu::new(NopIn::default(), Vec::new());
        encode(&pdu, DigestConfig::default(), &mut bytes);
        s.write_all(&bytes).expect("write");
        c.recv(Duration::from_secs(2)).expect("pdu");
        let (stream, rest) = c.into_stream().expect("idle");
        assert!(rest.is_empty());
        assert_eq!(stream.peer_addr().ok(), s.local_addr().ok());

        let (mut c, mut s) = pair();
        s.write_all(&bytes[..20]).expect("write");
        assert!(c.recv(Duration::from_millis(50)).is_err());
        assert!(matches!(c.into_stream(), Err(Error::Protocol(_))));
    }

    #[test]
    fn receives_fragmented_pdus_and_reports_close_and_timeout() {
        let (mut c, mut s) = pair();
        let pdu = Pdu::new(
            NopIn {
                itt: 9,
                ttt: 0xffff_ffff,
                stat_sn: 1,
                ..NopIn::default()
            },
            b"hello".to_vec(),
        );
        let mut bytes = Vec::new();
        encode(&pdu, DigestConfig::default(), &mut bytes);
        bytes.extend_from_slice(&bytes.clone());
        s.write_all(&bytes[..30]).expect("write");
        assert!(c
            .recv(Duration::from_millis(50))
            .expect_err("partial")
            .is_timeout());
        s.write_all(&bytes[30..]).expect("write");
        for _ in 0..2 {
            let got = c.recv(Duration::from_secs(2)).expect("pdu");
            assert!(matches!(got.bhs, Bhs::NopIn(ref n) if n.itt == 9));
            assert_eq!(got.data, b"hello");
        }
        drop(s);
        assert!(c.recv(Duration::from_secs(2)).expect_err("eof").is_closed());
    }
}
