//! `ustgt-load`: an iSCSI load generator that costs its host little CPU per command, so that
//! the target, not the initiator, is what a run measures.
//!
//! One thread drives every connection: non-blocking sockets with TCP_NODELAY, every command
//! that can be issued encoded into one buffer and sent with one write, replies read 256 KiB at
//! a time and decoded in place, and a sleep in epoll only when no socket is readable. Options
//! follow libiscsi's `iscsi-load` (see `ustgt-load -h`); the result is one JSON line.

mod args;
mod engine;
mod hist;
mod run;
mod verify;

use std::process::ExitCode;

use args::{Args, USAGE};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ustgt-load: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run::run(&args) {
        Ok(report) => {
            println!("{}", report.json());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ustgt-load: {e}");
            ExitCode::from(2)
        }
    }
}
