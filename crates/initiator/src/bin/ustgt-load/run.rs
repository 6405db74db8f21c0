//! Login, the event loop over every connection, logout, and the report.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use ustgt_initiator::wire::lun_from_index;
use ustgt_initiator::{LoginOptions, Session};

use crate::args::Args;
use crate::engine::{Engine, Params, Stats, Workload};

/// How long commands still in flight may take to complete after the run time.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long to wait for Logout Responses.
const LOGOUT_LIMIT: Duration = Duration::from_secs(2);
/// Longest single sleep in poll (the deadline is checked after each).
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// One connection: its socket and engine.
struct Link {
    sock: mio::net::TcpStream,
    eng: Engine,
    /// The socket may have more to read (edge-triggered readiness: read until a short read).
    readable: bool,
    /// The last write found the socket full: wait for a writable event.
    blocked: bool,
    /// Bytes of `eng.out` already written.
    sent: usize,
    /// The connection failed or was closed by the target.
    lost: bool,
}

impl Link {
    /// One read into the engine's buffer.
    fn read(&mut self) -> io::Result<()> {
        let space = self.eng.input_space();
        let len = space.len();
        match self.sock.read(space) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                self.eng.received(n);
                self.readable = n == len;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Write what is queued, in one write unless the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while !self.blocked && self.sent < self.eng.out.len() {
            match self.sock.write(&self.eng.out[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.eng.out.len() {
            self.eng.out.clear();
            self.sent = 0;
        }
        Ok(())
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Report {
    qd: u32,
    conns: u32,
    bytes: u64,
    write_pct: u32,
    elapsed: f64,
    stats: Stats,
    cpu_us: f64,
    /// (checked, mismatched, first mismatching block) with `-V`.
    verified: Option<(u64, u64, Option<u64>)>,
    lost: bool,
}

impl Report {
    /// True when every command ended GOOD and every checked block matched.
    pub fn ok(&self) -> bool {
        self.stats.errors == 0 && !self.lost && self.verified.map_or(true, |v| v.1 == 0)
    }

    /// The result as one line of JSON.
    pub fn json(&self) -> String {
        let s = &self.stats;
        let el = self.elapsed.max(1e-9);
        let pct = |p| s.hist.percentile(p) / 1000.0;
        let mut j = format!(
            "{{\"iops\": {:.0}, \"mbps\": {:.1}, \"qd\": {}, \"conns\": {}, \"bytes\": {}, \
             \"write_pct\": {}, \"lat_us\": {{\"p50\": {:.1}, \"p99\": {:.1}, \"p999\": {:.1}}}, \
             \"ios\": {}, \"errors\": {}, \"client_cpu_us_per_io\": {:.3}",
            s.ios as f64 / el,
            s.bytes as f64 / el / 1e6,
            self.qd,
            self.conns,
            self.bytes,
            self.write_pct,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            s.ios,
            s.errors,
            self.cpu_us / s.ios.max(1) as f64,
        );
        if let Some((checked, mismatched, first_bad)) = self.verified {
            j += &format!(", \"checked_blocks\": {checked}, \"mismatched_blocks\": {mismatched}");
            if let Some(b) = first_bad {
                j += &format!(", \"first_bad_block\": {b}");
            }
        }
        if self.lost {
            j += ", \"connection_lost\": true";
        }
        j + "}"
    }
}

/// Log in one connection; returns it with the LUN's (block count, block size).
fn connect(args: &Args) -> Result<(Link, u64, u32), String> {
    let lun = args.url.lun;
    let mut opts = LoginOptions::normal(&args.url.iqn);
    opts.initiator_name = args.initiator.clone();
    opts.timeout = Duration::from_secs(10);
    let addr = args.url.addr.as_str();
    let mut s = Session::login(addr, opts).map_err(|e| format!("{addr}: {e}"))?;
    let ctx = |e: ustgt_initiator::Error| format!("{addr}: {e}");
    s.clear_unit_attention(lun).map_err(ctx)?;
    let (last_lba, block_size) = s.read_capacity16(lun).map_err(ctx)?;
    let n = s.negotiated.clone();
    if n.header_digest || n.data_digest {
        return Err("the target insists on digests, which ustgt-load does not offer".into());
    }
    if block_size == 0 || block_size % 16 != 0 {
        return Err(format!("unsupported block size {block_size}"));
    }
    let p = Params {
        lun: lun_from_index(lun),
        immediate_max: if n.immediate_data {
            n.first_burst_length
                .min(n.target_max_recv_data_segment_length)
        } else {
            0
        },
        send_segment_max: n.target_max_recv_data_segment_length,
        recv_segment_max: n.max_recv_data_segment_length,
        cmd_sn: s.cmd_sn(),
        exp_stat_sn: s.exp_stat_sn(),
        max_cmd_sn: s.cmd_window().1,
    };
    let (stream, rest) = s
        .into_connection()
        .and_then(|c| c.into_stream())
        .map_err(ctx)?;
    let io = |e: io::Error| format!("{addr}: {e}");
    stream.set_nonblocking(true).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let link = Link {
        sock: mio::net::TcpStream::from_std(stream),
        eng: Engine::new(p, args.qd, &rest),
        readable: true,
        blocked: false,
        sent: 0,
        lost: false,
    };
    Ok((link, last_lba.saturating_add(1), block_size))
}

/// Process CPU time (user + system) in microseconds.
fn cpu_time_us() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `struct rusage` into the valid, writable memory it is given;
    // the all-zero bit pattern is a valid `rusage` in case it fails.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Everything the event loop works on.
struct Loop {
    poll: Poll,
    events: Events,
    links: Vec<Link>,
    wl: Workload,
    st: Stats,
    start: Instant,
    /// Most commands per write (`usize::MAX`: all that can be issued).
    batch: usize,
}

impl Loop {
    /// Read, decode, issue (unless `issue` is false) and write on every connection; returns
    /// false when a connection was lost.
    fn step(&mut self, issue: bool) -> bool {
        for l in self.links.iter_mut().filter(|l| l.readable && !l.lost) {
            if let Err(e) = l.read() {
                self.st.error(|| format!("connection lost: {e}"));
                l.lost = true;
            }
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let mut ok = true;
        for l in self.links.iter_mut().filter(|l| !l.lost) {
            if let Err(e) = l.eng.process(now, &mut self.wl, &mut self.st) {
                self.st.error(|| e);
                l.lost = true;
                continue;
            }
            if issue {
                l.eng.issue(now, &mut self.wl, self.batch);
            }
            let mut r = l.flush();
            while issue && self.batch != usize::MAX && r.is_ok() {
                if l.eng.issue(now, &mut self.wl, self.batch) == 0 {
                    break;
                }
                r = l.flush();
            }
            if let Err(e) = r {
                self.st.error(|| format!("connection lost: {e}"));
                l.lost = true;
            }
        }
        for l in self.links.iter().filter(|l| l.lost) {
            ok = false;
            self.st.errors += l.eng.in_flight() as u64;
        }
        ok
    }

    /// Sleep in epoll (at most `limit`) unless a socket may still be readable.
    fn wait(&mut self, limit: Duration) -> Result<(), String> {
        if self.links.iter().any(|l| l.readable && !l.lost) {
            return Ok(());
        }
        match self.poll.poll(&mut self.events, Some(limit.min(MAX_SLEEP))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(format!("poll: {e}")),
        }
        for ev in self.events.iter() {
            if let Some(l) = self.links.get_mut(ev.token().0) {
                l.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                l.blocked &= !(ev.is_writable() || ev.is_error());
            }
        }
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.links.iter().map(|l| l.eng.in_flight()).sum()
    }

    /// Keep the load up for `run`, then let what is in flight complete. False when a
    /// connection was lost.
    fn load(&mut self, run: Duration) -> Result<bool, String> {
        let drain_end = run + DRAIN_LIMIT;
        loop {
            let t = self.start.elapsed();
            let issuing = t < run;
            if !self.step(issuing) {
                return Ok(false);
            }
            if !issuing && self.in_flight() == 0 {
                return Ok(true);
            }
            if t > drain_end {
                let left = self.in_flight();
                self.st.error(|| format!("{left} commands never completed"));
                self.st.errors += left as u64 - 1;
                return Ok(false);
            }
            let limit = if issuing { run - t } else { drain_end - t };
            self.wait(limit)?;
        }
    }

    /// Log every connection out (best effort: a failure is reported, not counted).
    fn logout(&mut self) {
        for l in self.links.iter_mut() {
            l.eng.logout();
        }
        let end = Instant::now() + LOGOUT_LIMIT;
        let mut st = Stats::default();
        while Instant::now() < end {
            for l in self.links.iter_mut().filter(|l| !l.lost) {
                let r = l.read().map_err(|e| e.to_string());
                let r = r.and_then(|()| l.eng.process(0, &mut self.wl, &mut st));
                let r = r.and_then(|()| l.flush().map_err(|e| e.to_string()));
                l.lost = r.is_err() || l.eng.logged_out();
            }
            if self.links.iter().all(|l| l.lost) || self.wait(end - Instant::now()).is_err() {
                break;
            }
        }
        if self.links.iter().any(|l| !l.eng.logged_out()) {
            eprintln!("ustgt-load: warning: not every connection logged out cleanly");
        }
    }
}

/// Log in, run the load, log out.
pub fn run(args: &Args) -> Result<Report, String> {
    let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut links = Vec::new();
    let mut geometry = (0, 0);
    for i in 0..args.conns as usize {
        let (mut link, blocks, bs) = connect(args)?;
        poll.registry()
            .register(
                &mut link.sock,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll: {e}"))?;
        links.push(link);
        geometry = (blocks, bs);
    }
    let (blocks, block_size) = geometry;
    if args.bytes % u64::from(block_size) != 0 {
        return Err(format!(
            "-b must be a multiple of the block size {block_size}"
        ));
    }
    let range = match args.range_bytes {
        0 => blocks,
        r => (r / u64::from(block_size)).min(blocks),
    };
    if range < args.bytes / u64::from(block_size) {
        return Err("the LUN (or -r) is smaller than one command".into());
    }
    let wl = Workload::new(
        block_size,
        args.bytes,
        range,
        args.write_pct,
        args.sequential,
        args.fua,
        args.verify,
    );
    let mut lp = Loop {
        poll,
        events: Events::with_capacity(args.conns as usize * 2),
        links,
        wl,
        st: Stats::default(),
        start: Instant::now(),
        batch: match args.batch {
            0 => usize::MAX,
            n => n as usize,
        },
    };
    let cpu0 = cpu_time_us();
    let completed = lp.load(Duration::from_secs_f64(args.seconds))?;
    let elapsed = lp.start.elapsed().as_secs_f64();
    let cpu_us = cpu_time_us() - cpu0;
    if completed {
        lp.logout();
    }
    let verified = lp
        .wl
        .verifier
        .as_ref()
        .map(|v| (v.checked, v.mismatched, v.first_bad));
    Ok(Report {
        qd: args.qd,
        conns: args.conns,
        bytes: args.bytes,
        write_pct: args.write_pct,
        elapsed,
        stats: lp.st,
        cpu_us,
        verified,
        lost: !completed,
    })
}
