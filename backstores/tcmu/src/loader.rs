//! Loading handler plugins: `dlopen(RTLD_NOW|RTLD_LOCAL)` as the daemon does, then
//! `handler_init()`, which registers the plugin's `struct tcmur_handler` through
//! [`register`] (`tcmur_register_handler`). Plugins are never unloaded (librbd keeps threads
//! and exit handlers), and each file is loaded once per process.

use std::ffi::{c_char, c_int, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::abi::{InitFn, TcmurHandler};
use crate::logsink::Capture;

/// Debian's handler directory, the default of `--handler-dir`.
pub const DEFAULT_HANDLER_DIR: &str = "/usr/lib/x86_64-linux-gnu/tcmu-runner";

/// Largest `nr_threads` accepted from a plugin (a sanity check of the layout).
const MAX_NR_THREADS: c_int = 1024;

/// A registered handler plugin. The structure lives in the plugin's data for the life of the
/// process (plugins are never unloaded).
#[derive(Debug)]
pub struct Handler {
    /// The plugin file.
    pub path: PathBuf,
    /// Its subtype (`qcow`, `rbd`, `zbc`, `fbo`).
    pub subtype: String,
    /// Its human-readable name.
    pub name: String,
    table: *const TcmurHandler,
}

// SAFETY: the handler table is static data of a plugin that is never unloaded, and the host
// only reads it after registration.
unsafe impl Send for Handler {}
// SAFETY: as above.
unsafe impl Sync for Handler {}

impl Handler {
    /// The registered structure.
    pub fn table(&self) -> &TcmurHandler {
        // SAFETY: `table` points to the plugin's registered structure, which lives forever
        // (never dlclose'd) and is not changed after registration.
        unsafe { &*self.table }
    }

    /// The plugin's file name, for messages.
    pub fn file_name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// Callouts return their final status (nr_threads > 0); otherwise read, write, flush...
    /// complete later through `tcmur_cmd_complete`.
    pub fn synchronous(&self) -> bool {
        self.table().nr_threads > 0
    }
}

/// Plugins loaded so far, by path.
static LOADED: Mutex<Vec<Arc<Handler>>> = Mutex::new(Vec::new());
/// Registered structures (addresses), to refuse a second registration of a subtype.
static REGISTERED: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
/// The structure registered by the `handler_init` running now.
static CAPTURED: AtomicPtr<TcmurHandler> = AtomicPtr::new(std::ptr::null_mut());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The plugin file names tried for `subtype`: `handler_SUBTYPE.so`, `handler_file_SUBTYPE.so`,
/// and Debian's name of the optical handler for `fbo`.
pub fn candidates(subtype: &str) -> Vec<String> {
    let mut names = vec![
        format!("handler_{subtype}.so"),
        format!("handler_file_{subtype}.so"),
    ];
    if subtype == "fbo" {
        names.push("handler_file_optical.so".into());
    }
    names
}

/// Loads (once) the plugin of `subtype` from `dir` and returns its registered handler.
/// Errors name the file and the reason (missing file, dlopen's message such as an undefined
/// symbol, a failed or missing registration, a subtype mismatch).
pub fn load(dir: &Path, subtype: &str) -> Result<Arc<Handler>, String> {
    let valid = !subtype.is_empty()
        && subtype
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(format!("invalid handler subtype \"{subtype}\""));
    }
    let names = candidates(subtype);
    let Some(path) = names.iter().map(|n| dir.join(n)).find(|p| p.exists()) else {
        return Err(format!(
            "no handler for \"{subtype}\" in {} (looked for {}; install the tcmu-runner \
             package or give --handler-dir)",
            dir.display(),
            names.join(", ")
        ));
    };
    let path = path.canonicalize().unwrap_or(path);
    let mut loaded = lock(&LOADED);
    if let Some(h) = loaded.iter().find(|h| h.path == path) {
        return check_subtype(h.clone(), subtype);
    }
    let handler = Arc::new(load_file(&path)?);
    loaded.push(handler.clone());
    check_subtype(handler, subtype)
}

fn check_subtype(h: Arc<Handler>, subtype: &str) -> Result<Arc<Handler>, String> {
    if h.subtype != subtype {
        return Err(format!(
            "{} registers the subtype \"{}\", not \"{subtype}\"",
            h.path.display(),
            h.subtype
        ));
    }
    Ok(h)
}

/// The C library's last dynamic-loader error.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl call;
    // it is copied at once (loads are serialised by the LOADED lock).
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: non-NULL, NUL-terminated.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

/// dlopen, dlsym("handler_init"), call it, and collect what it registered.
fn load_file(path: &Path) -> Result<Handler, String> {
    let shown = path.display();
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{shown}: the path contains a NUL byte"))?;
    // SAFETY: a NUL-terminated path; the library's constructors run here, as in the daemon.
    let lib = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if lib.is_null() {
        return Err(format!("cannot load {shown}: {}", dl_error()));
    }
    // SAFETY: `lib` is a live handle; the name is NUL-terminated.
    let sym = unsafe { libc::dlsym(lib, c"handler_init".as_ptr()) };
    if sym.is_null() {
        return Err(format!(
            "{shown} is not a tcmu-runner handler (it has no handler_init)"
        ));
    }
    // SAFETY: every tcmu-runner plugin's handler_init is `int handler_init(void)`.
    let init: InitFn = unsafe { std::mem::transmute::<*mut libc::c_void, InitFn>(sym) };
    CAPTURED.store(std::ptr::null_mut(), Ordering::SeqCst);
    let capture = Capture::start();
    // SAFETY: calling the plugin's entry point, as the daemon does, on a plain thread.
    let rc = unsafe { init() };
    let reason = capture.finish();
    let table = CAPTURED.swap(std::ptr::null_mut(), Ordering::SeqCst);
    if rc != 0 || table.is_null() {
        let why = reason.map_or(String::new(), |r| format!(": {r}"));
        return Err(format!(
            "{shown}: handler_init failed (returned {rc}{}){why}",
            if table.is_null() {
                ", nothing registered"
            } else {
                ""
            }
        ));
    }
    // SAFETY: `register` checked the structure before storing its address.
    let t = unsafe { &*table };
    // SAFETY: checked to be short NUL-terminated strings by `register`.
    let (subtype, name) = unsafe { (c_text(t.subtype), c_text(t.name)) };
    log::debug!(
        "loaded {shown}: {name} (subtype {subtype}, nr_threads {})",
        t.nr_threads
    );
    Ok(Handler {
        path: path.to_path_buf(),
        subtype,
        name,
        table,
    })
}

/// A C string as text (empty for NULL).
///
/// # Safety
/// `s` must be NULL or NUL-terminated.
unsafe fn c_text(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
}

/// Reads a short C string, refusing anything that is not printable ASCII within 64 bytes
/// (a structure of another tcmu-runner version would fail here, not later).
///
/// # Safety
/// `s` must be NULL or point to readable memory up to its NUL or 64 bytes.
unsafe fn short_text(s: *const c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    let mut out = String::new();
    for i in 0..64 {
        // SAFETY: per the contract.
        let b = unsafe { *s.add(i) } as u8;
        match b {
            0 => return Some(out),
            0x20..=0x7e => out.push(char::from(b)),
            _ => return None,
        }
    }
    None
}

/// `tcmur_register_handler`: checks the structure looks like a 1.5.4 one, refuses a subtype
/// registered twice, runs the handler's `init`, and records it for [`load`].
pub(crate) fn register(h: *mut TcmurHandler) -> c_int {
    if h.is_null() {
        log::error!("tcmu: a handler registered a NULL structure");
        return -1;
    }
    // SAFETY: a registering plugin passes its static handler structure (200 bytes in 1.5.4);
    // fields are read through raw pointers, as a byte for the bool, so that a structure of
    // another version cannot produce an invalid value.
    let (subtype, name, threads, dbus) = unsafe {
        let dbus = *(h as *const u8).add(std::mem::offset_of!(TcmurHandler, is_dbus_handler));
        (
            short_text(std::ptr::addr_of!((*h).subtype).read()),
            short_text(std::ptr::addr_of!((*h).name).read()),
            std::ptr::addr_of!((*h).nr_threads).read(),
            dbus,
        )
    };
    let Some(subtype) = subtype.filter(|s| !s.is_empty()) else {
        log::error!(
            "tcmu: a handler registered without a readable subtype (not tcmu-runner 1.5.4?)"
        );
        return -1;
    };
    if name.is_none() || !(0..=MAX_NR_THREADS).contains(&threads) || dbus != 0 {
        log::error!(
            "tcmu: handler \"{subtype}\" does not look like a tcmu-runner 1.5.4 handler \
             (nr_threads {threads}, dbus flag {dbus})"
        );
        return -1;
    }
    let mut registered = lock(&REGISTERED);
    if registered.iter().any(|(s, _)| *s == subtype) {
        log::error!("tcmu: handler \"{subtype}\" is already registered");
        return -1;
    }
    // SAFETY: checked above to be a plausible 1.5.4 structure.
    if let Some(init) = unsafe { std::ptr::addr_of!((*h).init).read() } {
        // SAFETY: the handler's own `int init(void)`, called as the daemon does.
        let rc = unsafe { init() };
        if rc != 0 {
            log::error!("tcmu: handler \"{subtype}\" init failed ({rc})");
            return rc;
        }
    }
    registered.push((subtype, h as usize));
    CAPTURED.store(h, Ordering::SeqCst);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_names() {
        assert_eq!(
            candidates("qcow"),
            ["handler_qcow.so", "handler_file_qcow.so"]
        );
        assert!(candidates("fbo").contains(&"handler_file_optical.so".to_string()));
    }

    #[test]
    fn missing_plugin_names_the_directory() {
        let e = load(Path::new("/nonexistent-handlers"), "qcow").unwrap_err();
        assert!(
            e.contains("no handler for \"qcow\" in /nonexistent-handlers"),
            "{e}"
        );
        assert!(e.contains("handler_qcow.so"), "{e}");
        let e = load(Path::new("/tmp"), "../x").unwrap_err();
        assert!(e.contains("invalid handler subtype"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_library() {
        let dir = std::env::temp_dir().join(format!("tcmu-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("handler_junk.so"), b"not an ELF file").expect("write");
        let e = load(&dir, "junk").unwrap_err();
        assert!(e.starts_with("cannot load "), "{e}");
        assert!(e.contains("handler_junk.so"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn register_refuses_garbage() {
        assert_eq!(register(std::ptr::null_mut()), -1);
        // 200 aligned bytes; NULL name and subtype are refused before any call.
        let mut words = [0u64; 25];
        words[8] = 7;
        assert_eq!(register(words.as_mut_ptr().cast::<TcmurHandler>()), -1);
        let text = c"qcow-test";
        words[0] = text.as_ptr() as u64;
        words[1] = text.as_ptr() as u64;
        words[8] = 5000;
        assert_eq!(
            register(words.as_mut_ptr().cast::<TcmurHandler>()),
            -1,
            "nr_threads"
        );
    }
}
