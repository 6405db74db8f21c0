//! Runs one input file through one target's harness, with a normal panic message and
//! backtrace: `cargo run --example run_one -- TARGET FILE` (add `USTGT_FUZZ_TRACE=1` to print
//! every PDU in and every output).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = &args[..] else {
        eprintln!("usage: run_one TARGET FILE");
        std::process::exit(2);
    };
    let Some((_, f)) = ustgt_fuzz::TARGETS.iter().find(|(n, _)| n == target) else {
        eprintln!("unknown target {target}");
        std::process::exit(2);
    };
    let data = std::fs::read(file).expect("read input");
    f(&data);
    println!("ok");
}
