//! Builds the C half of the handler host (the variadic logging functions) and tells Cargo how
//! executables must be linked so that dlopen'ed handlers find the host's symbols.
//!
//! - `shim.c` is linked whole-archive: nothing in Rust calls its functions, so a plain static
//!   archive would be dropped by the linker.
//! - The test executables of this crate get `--dynamic-list=exports.dynlist`, which puts exactly
//!   the 44 host symbols into their dynamic symbol table.
//! - Crates that build an executable with this store read the list's path from
//!   `DEP_USTGT_TCMU_HOST_DYNAMIC_LIST` in their own build script and pass the same argument.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let list = manifest.join("exports.dynlist");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=exports.dynlist");
    cc::Build::new()
        .file("csrc/shim.c")
        .warnings(true)
        .flag_if_supported("-fno-strict-aliasing")
        .cargo_metadata(false)
        .compile("ustgt_tcmu_shim");
    let out = env::var("OUT_DIR").expect("OUT_DIR");
    println!("cargo:rustc-link-search=native={out}");
    println!("cargo:rustc-link-lib=static:+whole-archive=ustgt_tcmu_shim");
    println!("cargo:rustc-link-lib=dylib=dl");
    println!(
        "cargo:rustc-link-arg-tests=-Wl,--dynamic-list={}",
        list.display()
    );
    println!("cargo:dynamic_list={}", list.display());
}
