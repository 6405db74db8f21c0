//! Serves one `aio` LUN on 127.0.0.1 until killed, for manual checks and libiscsi's suite:
//!
//!     cargo run --release -p ustgt-target --example serve_aio -- PATH SIZE_MIB [direct] [qd=N] [port=P]
//!
//! Prints the LUN's `iscsi://` URL on stdout.
use std::sync::Arc;

use scsi_core::{Device, DeviceConfig, LunTable};
use store_aio::{AioOptions, AioStore};
use ustgt_target::{ExportedTarget, Limits, Server, Setup, StopHandle};

const IQN: &str = "iqn.2026-11.io.ustgt:aio";

fn main() -> std::io::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(size)) = (args.first(), args.get(1)) else {
        eprintln!("usage: serve_aio PATH SIZE_MIB [direct] [qd=N] [port=P]");
        std::process::exit(2);
    };
    let mib: u64 = size.parse().unwrap_or(64);
    let mut opts = AioOptions {
        size: Some(mib << 20),
        create: true,
        ..AioOptions::default()
    };
    let mut port = 0u16;
    for a in &args[2..] {
        if a == "direct" {
            opts.direct = true;
        } else if let Some(n) = a.strip_prefix("qd=") {
            opts.queue_depth = n.parse().unwrap_or(opts.queue_depth);
        } else if let Some(p) = a.strip_prefix("port=") {
            port = p.parse().unwrap_or(0);
        }
    }
    let store = AioStore::open(path, opts)?;
    let dev = Device::new(Arc::new(store), DeviceConfig::new("aio0".into()));
    let server = Server::bind(Setup {
        portals: vec![([127, 0, 0, 1], port).into()],
        targets: vec![ExportedTarget {
            iqn: IQN.into(),
            alias: None,
            luns: Arc::new(LunTable::new(vec![(0, Arc::new(dev))])),
        }],
        limits: Limits::default(),
        workers: 2,
    })?;
    for a in server.local_addrs() {
        println!("iscsi://{a}/{IQN}/0");
    }
    server.run(StopHandle::new())
}
