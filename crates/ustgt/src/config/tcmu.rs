//! The tcmu store in the configuration file:
//!
//! ```toml
//! [server]
//! handler-dir = "/usr/lib/x86_64-linux-gnu/tcmu-runner"   # optional; relative to this file
//!
//! [[target.lun]]
//! store = "tcmu"
//! handler = "qcow"                          # the handler's subtype: handler_qcow.so
//! config = "/var/lib/images/vm.qcow2"       # what follows "SUBTYPE/" in tcmu-runner's string
//! size = "10G"                              # optional where the image tells it (qcow)
//! queue-depth = 128                         # optional
//! ```
//!
//! `handler` and `config` make the string `SUBTYPE/CONFIG` the handler receives, so the LUN
//! above is the quick form's `tcmu:qcow//var/lib/images/vm.qcow2`. `--handler-dir` on the
//! command line overrides `handler-dir`.

use std::path::Path;

use super::{refuse, Locator, RawLun, RawServer, TargetSpec};
use crate::lunspec::{check_tcmu_cfgstring, StoreSpec};

/// The store of a `store = "tcmu"` LUN.
pub(super) fn build_store(
    raw: &RawLun,
    size: Option<u64>,
    queue_depth: Option<u32>,
    ctx: &str,
    loc: &Locator,
) -> Result<StoreSpec, String> {
    if let Some(p) = &raw.path {
        return Err(loc.at(
            p,
            format!("{ctx}: path does not apply to tcmu stores (give handler and config)"),
        ));
    }
    let handler = raw.handler.as_ref().ok_or_else(|| {
        loc.at(
            &raw.store,
            format!("{ctx}: a tcmu store needs a handler (e.g. handler = \"qcow\")"),
        )
    })?;
    let config = raw.config.as_ref().ok_or_else(|| {
        loc.at(
            &raw.store,
            format!("{ctx}: a tcmu store needs a config (e.g. config = \"/srv/vm.qcow2\")"),
        )
    })?;
    if handler.get_ref().contains('/') {
        return Err(loc.at(
            handler,
            format!("{ctx}: invalid handler subtype \"{}\"", handler.get_ref()),
        ));
    }
    let text = format!("{}/{}", handler.get_ref(), config.get_ref());
    // An empty config is the config's fault; anything else points at the handler.
    let at = if config.get_ref().is_empty() {
        config
    } else {
        handler
    };
    let cfgstring = check_tcmu_cfgstring(&text).map_err(|e| loc.at(at, format!("{ctx}: {e}")))?;
    Ok(StoreSpec::Tcmu {
        cfgstring,
        size,
        handler_dir: None,
        queue_depth,
    })
}

/// Refuses `handler` and `config` on stores of other kinds.
pub(super) fn refuse_keys(
    raw: &RawLun,
    kind: &str,
    ctx: &str,
    loc: &Locator,
) -> Result<(), String> {
    if kind != "tcmu" {
        refuse(&raw.handler, "handler", kind, ctx, loc)?;
        refuse(&raw.config, "config", kind, ctx, loc)?;
    }
    Ok(())
}

/// Applies `[server] handler-dir` (relative to `base`, the file's directory) to every tcmu LUN.
pub(super) fn assign_handler_dir(
    targets: &mut [TargetSpec],
    server: Option<&RawServer>,
    loc: &Locator,
    base: &Path,
) -> Result<(), String> {
    let Some(dir) = server.and_then(|s| s.handler_dir.as_ref()) else {
        return Ok(());
    };
    if dir.get_ref().trim().is_empty() {
        return Err(loc.at(dir, "handler-dir must not be empty"));
    }
    set_handler_dir(targets, &base.join(dir.get_ref()));
    Ok(())
}

/// Sets where every tcmu LUN's handler plugin is looked for.
pub fn set_handler_dir(targets: &mut [TargetSpec], dir: &Path) {
    for t in targets {
        for (_, spec) in &mut t.luns {
            if let StoreSpec::Tcmu { handler_dir, .. } = &mut spec.store {
                *handler_dir = Some(dir.to_path_buf());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const HEAD: &str = "[[target]]\niqn = \"iqn.2026-11.io.ustgt:t\"\n[[target.lun]]\n";

    fn store(lun: &str) -> Result<StoreSpec, String> {
        parse(&format!("{HEAD}{lun}"), "c.toml").map(|c| c.targets[0].luns[0].1.store.clone())
    }

    #[test]
    fn tcmu_lun() {
        let s = store(
            "store = \"tcmu\"\nhandler = \"qcow\"\nconfig = \"/srv/a.qcow2\"\nqueue-depth = 16",
        )
        .expect("parse");
        assert_eq!(
            s,
            StoreSpec::Tcmu {
                cfgstring: "qcow//srv/a.qcow2".into(),
                size: None,
                handler_dir: None,
                queue_depth: Some(16)
            }
        );
        let s = store("store = \"tcmu\"\nhandler = \"rbd\"\nconfig = \"pool/img\"\nsize = \"1G\"")
            .expect("parse");
        assert_eq!(s.size(), Some(1 << 30));
    }

    #[test]
    fn tcmu_errors_have_lines() {
        let e = store("store = \"tcmu\"\nconfig = \"/a\"").unwrap_err();
        assert!(
            e.starts_with("c.toml:4: ") && e.contains("needs a handler"),
            "{e}"
        );
        let e = store("store = \"tcmu\"\nhandler = \"qcow\"").unwrap_err();
        assert!(e.contains("needs a config"), "{e}");
        let e = store("store = \"tcmu\"\nhandler = \"q/x\"\nconfig = \"/a\"").unwrap_err();
        assert!(
            e.starts_with("c.toml:5: ") && e.contains("invalid handler subtype"),
            "{e}"
        );
        let e = store("store = \"tcmu\"\nhandler = \"qcow\"\nconfig = \"/a\"\npath = \"/b\"")
            .unwrap_err();
        assert!(
            e.starts_with("c.toml:7: ") && e.contains("give handler and config"),
            "{e}"
        );
        let e = store("store = \"file\"\npath = \"/a\"\nhandler = \"qcow\"").unwrap_err();
        assert!(e.contains("handler does not apply to file stores"), "{e}");
        let e = store("store = \"ram\"\nsize = \"1M\"\nconfig = \"x\"").unwrap_err();
        assert!(e.contains("config does not apply to ram stores"), "{e}");
    }

    #[test]
    fn handler_dir_from_the_server_table() {
        let text = format!(
            "[server]\nhandler-dir = \"plugins\"\n{HEAD}store = \"tcmu\"\nhandler = \"qcow\"\n\
             config = \"/a\"\n[[target.lun]]\nstore = \"ram\"\nsize = \"1M\""
        );
        let mut c = parse(&text, "c.toml").expect("parse");
        match &c.targets[0].luns[0].1.store {
            StoreSpec::Tcmu { handler_dir, .. } => {
                assert_eq!(handler_dir.as_deref(), Some(Path::new("plugins")))
            }
            other => panic!("{other:?}"),
        }
        set_handler_dir(&mut c.targets, Path::new("/opt/h"));
        match &c.targets[0].luns[0].1.store {
            StoreSpec::Tcmu { handler_dir, .. } => {
                assert_eq!(handler_dir.as_deref(), Some(Path::new("/opt/h")))
            }
            other => panic!("{other:?}"),
        }
        let e = parse(
            &format!("[server]\nhandler-dir = \" \"\n{HEAD}store = \"ram\"\nsize = 512"),
            "c.toml",
        )
        .unwrap_err();
        assert!(
            e.starts_with("c.toml:2: handler-dir must not be empty"),
            "{e}"
        );
    }
}
