//! Exports the host functions of the tcmu store from the `ustgt` executable, so that the
//! tcmu-runner handler plugins it dlopens (which import them, and are linked with BIND_NOW)
//! resolve. Only the listed symbols are exported (`--dynamic-list`, not `-rdynamic`): the
//! zbc and optical plugins carry their own copies of some libtcmu functions, which a wider
//! export would interpose. The list comes from the store crate (`links = "ustgt_tcmu_host"`).

fn main() {
    match std::env::var("DEP_USTGT_TCMU_HOST_DYNAMIC_LIST") {
        Ok(list) => {
            println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-list={list}");
            println!("cargo:rerun-if-changed={list}");
        }
        Err(_) => println!(
            "cargo:warning=store-tcmu did not give its dynamic symbol list: tcmu handlers will not load"
        ),
    }
    println!("cargo:rerun-if-env-changed=DEP_USTGT_TCMU_HOST_DYNAMIC_LIST");
}
