//! `ustgt`: the userspace iSCSI target server.
//!
//! `ustgt serve` with no arguments serves the embedded default (one 1 GiB RAM LUN on
//! 127.0.0.1:3260); the quick form takes portals, an IQN and LUN specs on the command line;
//! `--config FILE` reads a TOML description of portals, targets and LUNs.

mod acl;
mod auth;
mod config;
mod limits;
mod lunspec;
mod size;
mod stores;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use scsi_core::{DeviceConfig, LunTable};
use ustgt_target::{
    Coalesce, CoalesceMode, ExportedTarget, NetEngine, Server, Setup, StatsHandle, StopHandle,
};

use crate::config::{ServerConfig, TargetSpec};
use crate::lunspec::LunSpec;

/// The IQN the quick form and the embedded default serve under unless --iqn is given.
const DEFAULT_IQN: &str = "iqn.2026-11.io.ustgt:default";
const DEFAULT_PORTAL: &str = "127.0.0.1:3260";
const DEFAULT_LUN: &str = "ram:1G";

#[derive(Parser)]
#[command(name = "ustgt", version, about = "A userspace iSCSI target server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve LUNs over iSCSI until SIGINT or SIGTERM.
    ///
    /// Without arguments: one 1 GiB RAM LUN on 127.0.0.1:3260.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Portal to listen on (repeatable), e.g. 0.0.0.0:3260 or [::]:3260; port 0 picks a free one.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// Target name for the quick form.
    #[arg(long, value_name = "IQN")]
    iqn: Option<String>,
    /// TOML file describing portals, targets and LUNs (instead of the quick form).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["iqn", "luns"])]
    config: Option<PathBuf>,
    /// Event loop threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Adaptive reply coalescing: hold small replies while a connection is busy and write them
    /// the instant it goes idle (auto), hold after every busy iteration (on), or never (off).
    #[arg(long, value_name = "MODE", default_value = "off", value_parser = ["auto", "on", "off"])]
    coalesce: String,
    /// With --coalesce=auto: average commands per busy period from which replies are held.
    #[arg(long, value_name = "N", default_value_t = Coalesce::default().threshold)]
    coalesce_threshold: u32,
    /// With coalescing: write held replies once this many bytes are waiting (fill segments).
    #[arg(long, value_name = "BYTES", default_value_t = Coalesce::default().max_bytes)]
    coalesce_bytes: usize,
    /// With coalescing: hold replies over at most this many event loop iterations.
    #[arg(long, value_name = "N", default_value_t = Coalesce::default().max_iterations)]
    coalesce_iterations: u32,
    /// Keep polling without sleeping for this many microseconds after socket activity, so a
    /// request arriving meanwhile needs no thread wake-up (lower latency at low queue depth, at
    /// the cost of CPU); 0 turns it off.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 100)]
    busy_poll_us: u64,
    /// Network engine of the event loops: epoll (readiness, then read and writev per
    /// connection) or uring (receives and sends as io_uring requests, one io_uring_enter per
    /// loop iteration; falls back to epoll with a warning where io_uring is unavailable).
    #[arg(long, value_name = "ENGINE", default_value = "epoll", value_parser = ["epoll", "uring"])]
    net: String,
    /// Directory of the persistent reservation state, one small file per LUN, kept when an
    /// initiator registers with APTPL (persist through power loss) and restored at start. With
    /// --config it replaces the file's state-dir (default: beside the configuration file); the
    /// quick form supports APTPL only with it.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Directory of the tcmu-runner handler plugins (handler_qcow.so, ...) that tcmu: LUNs
    /// load (default: /usr/lib/x86_64-linux-gnu/tcmu-runner, Debian's tcmu-runner package);
    /// with --config it replaces the file's handler-dir.
    #[arg(long, value_name = "DIR")]
    handler_dir: Option<PathBuf>,
    #[command(flatten)]
    limits: limits::LimitArgs,
    /// Quick form: initiators must log in with CHAP as one of these users (repeatable).
    /// USER:@FILE reads the secret from FILE (one trailing newline removed), which keeps it out
    /// of `ps`; at least 12 bytes are recommended.
    #[arg(long = "chap", value_name = "USER:SECRET", conflicts_with = "config")]
    chap: Vec<String>,
    /// Quick form: the target's own credential for mutual CHAP, answered to initiators that ask
    /// the target to authenticate (normal sessions with --chap, discovery with
    /// --discovery-chap). USER:@FILE reads the secret from FILE.
    #[arg(
        long = "mutual-chap",
        value_name = "USER:SECRET",
        conflicts_with = "config"
    )]
    mutual_chap: Option<String>,
    /// Quick form: discovery sessions must log in with CHAP as one of these users
    /// (repeatable). USER:@FILE reads the secret from FILE.
    #[arg(
        long = "discovery-chap",
        value_name = "USER:SECRET",
        conflicts_with = "config"
    )]
    discovery_chap: Vec<String>,
    /// Quick form: only these initiators may log in (repeatable); others get login status
    /// 0x0202 (authorization failure), and SendTargets does not show them the target.
    #[arg(long = "allow", value_name = "IQN", conflicts_with = "config")]
    allow: Vec<String>,
    /// LUNs of the quick form, numbered 0, 1, 2...: ram:SIZE, ram:PATH[,size=SIZE][,lock],
    /// file:PATH[,size=SIZE][,direct], aio:PATH[,size=SIZE][,direct][,queue-depth=N],
    /// null:SIZE or tcmu:SUBTYPE/CONFIG[,size=SIZE] (a tcmu-runner handler, e.g.
    /// tcmu:qcow//srv/vm.qcow2), each followed by [,OPT...]; OPT: block-size=512|4096, readonly, wce=on|off,
    /// thin=on|off, serial=S, inject-... (see README.md).
    #[arg(value_name = "LUNSPEC")]
    luns: Vec<String>,
}

/// Logging per RUST_LOG, else the config file's `log`, else `info`.
fn init_logging(default: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ustgt: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration the quick form describes.
fn quick_config(args: &ServeArgs) -> Result<ServerConfig, String> {
    let listen = if args.listen.is_empty() {
        vec![DEFAULT_PORTAL.to_string()]
    } else {
        args.listen.clone()
    };
    let listen = listen
        .iter()
        .map(|a| parse_portal(a))
        .collect::<Result<Vec<_>, _>>()?;
    let iqn = args.iqn.clone().unwrap_or_else(|| DEFAULT_IQN.to_string());
    config::validate_iqn(&iqn).map_err(|e| format!("--iqn {iqn}: {e}"))?;
    let iqn = config::normalize_name(&iqn);
    let specs: Vec<&str> = if args.luns.is_empty() {
        vec![DEFAULT_LUN]
    } else {
        args.luns.iter().map(String::as_str).collect()
    };
    let mut luns = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let spec = lunspec::parse_lun_spec(s).map_err(|e| format!("LUN {i} ({s}): {e}"))?;
        luns.push((i as u64, spec));
    }
    let (auth, access) = auth::quick(&auth::QuickFlags {
        chap: &args.chap,
        mutual: args.mutual_chap.as_deref(),
        discovery: &args.discovery_chap,
        allow: &args.allow,
    })?;
    Ok(ServerConfig {
        listen,
        targets: vec![TargetSpec {
            iqn,
            alias: None,
            luns,
            access,
        }],
        auth,
        ..Default::default()
    })
}

fn parse_portal(s: &str) -> Result<SocketAddr, String> {
    config::parse_portal(s).map_err(|e| format!("--listen {s}: {e}"))
}

/// Open every store and build the SCSI device of each LUN; also says what each LUN is. No LUN
/// announces a MAXIMUM TRANSFER LENGTH above `max_transfer` bytes (the write budget).
fn build_target(
    t: &TargetSpec,
    max_transfer: u32,
    described: &mut Vec<String>,
) -> Result<ExportedTarget, String> {
    let mut luns = Vec::with_capacity(t.luns.len());
    for (id, spec) in &t.luns {
        let mut cfg = DeviceConfig::new(serial_for(&t.iqn, *id, spec));
        spec.apply_to(&mut cfg);
        cfg.max_transfer_bytes = cfg.max_transfer_bytes.min(max_transfer);
        let dev = stores::open_device(spec, cfg).map_err(|e| format!("{} LUN {id}: {e}", t.iqn))?;
        described.push(format!("{} LUN {id}: {}", t.iqn, dev.store().describe()));
        luns.push((*id, Arc::new(dev)));
    }
    Ok(ExportedTarget {
        iqn: t.iqn.clone(),
        alias: t.alias.clone(),
        luns: Arc::new(LunTable::new(luns)),
    })
}

/// The unit serial number: given, or a stable hash of the target name and LUN number.
fn serial_for(iqn: &str, lun: u64, spec: &LunSpec) -> String {
    if let Some(s) = &spec.serial {
        return s.clone();
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in iqn.bytes().chain(lun.to_be_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut cfg = match &args.config {
        Some(path) => config::load(path)?,
        None => quick_config(&args)?,
    };
    if let Some(dir) = &args.state_dir {
        config::assign_state_files(&mut cfg, dir)?;
    }
    if let Some(dir) = &args.handler_dir {
        config::tcmu::set_handler_dir(&mut cfg.targets, dir);
    }
    init_logging(cfg.log.as_deref().unwrap_or("info"));
    for w in &cfg.auth.warnings {
        log::warn!("{w}");
    }
    let limits = limits::effective(cfg.limits, &args.limits)?;
    let mut described = Vec::new();
    let targets = cfg
        .targets
        .iter()
        .map(|t| build_target(t, limits.max_transfer_bytes(), &mut described))
        .collect::<Result<Vec<_>, _>>()?;
    let views = acl::lun_views(&cfg.targets, &targets);
    let urls: Vec<(String, Vec<u64>)> = targets
        .iter()
        .map(|t| (t.iqn.clone(), t.luns.luns()))
        .collect();
    let mut server = Server::bind(Setup {
        portals: cfg.listen.clone(),
        targets,
        limits: limits.proto.clone(),
        workers: args.workers,
    })
    .map_err(|e| e.to_string())?;
    server.set_conn_limits(limits.conns);
    log::info!("limits: {}", limits.describe());
    server.set_busy_poll(std::time::Duration::from_micros(args.busy_poll_us));
    server.set_net(match args.net.as_str() {
        "uring" => NetEngine::Uring,
        _ => NetEngine::Epoll,
    });
    server.set_coalesce(Coalesce {
        mode: match args.coalesce.as_str() {
            "on" => CoalesceMode::On,
            "off" => CoalesceMode::Off,
            _ => CoalesceMode::Auto,
        },
        threshold: args.coalesce_threshold,
        max_bytes: args.coalesce_bytes,
        max_iterations: args.coalesce_iterations,
    });
    if let Some(access) = acl::Access::new(&cfg.auth, &cfg.targets) {
        for line in acl::describe(&cfg.auth, &cfg.targets) {
            log::info!("access: {line}");
        }
        server.set_access(Arc::new(access));
    }
    for (target, initiator, luns) in views {
        server.set_initiator_luns(&target, &initiator, luns);
    }
    for d in &described {
        log::info!("{d}");
    }
    for addr in server.local_addrs() {
        for (iqn, luns) in &urls {
            for lun in luns {
                println!("ustgt: serving iscsi://{addr}/{iqn}/{lun}");
            }
        }
    }
    let stop = StopHandle::new();
    install_signal_handlers(stop.clone(), server.stats())?;
    server.run(stop).map_err(|e| e.to_string())?;
    log::info!("stopped");
    Ok(())
}

/// SIGINT/SIGTERM stop the server gracefully; SIGUSR1 logs the datapath counters (totals,
/// and the change since the previous SIGUSR1).
fn install_signal_handlers(stop: StopHandle, stats: StatsHandle) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("ustgt-signals".into())
        .spawn(move || {
            let mut last = stats.snapshot();
            for sig in signals.forever() {
                if sig == SIGUSR1 {
                    let now = stats.snapshot();
                    log::info!("stats: {now}");
                    log::info!("stats since the last SIGUSR1: {}", now.since(&last));
                    last = now;
                    continue;
                }
                log::info!("signal {sig}: stopping");
                stop.stop();
                break;
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}
