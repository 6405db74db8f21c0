//! Where handler log messages go: the C shim formats them and calls
//! [`ustgt_tcmu_log_sink`], which logs through the `log` crate with the device's name.
//!
//! While the host loads a handler or opens a device it *captures* the messages of that thread
//! instead ([`Capture`]), so that a failure becomes one error naming the reason the handler
//! gave ("size misconfigured", ...), not a log line plus a vague error.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::DevPtr;
use crate::device::HostDevice;

/// Runner log levels.
const LEVEL_CRIT: c_int = 2;
const LEVEL_ERR: c_int = 3;
const LEVEL_WARN: c_int = 4;
const LEVEL_INFO: c_int = 6;

thread_local! {
    /// Messages of this thread while a capture is active.
    static CAPTURED: RefCell<Option<Vec<(c_int, String)>>> = const { RefCell::new(None) };
}

/// Collects the handler's messages on this thread until dropped or [`Capture::finish`]ed.
pub(crate) struct Capture(());

impl Capture {
    /// Starts collecting.
    pub fn start() -> Capture {
        CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
        Capture(())
    }

    /// The reason collected: every error message in order (joined by "; "), else the last
    /// warning.
    pub fn finish(self) -> Option<String> {
        let msgs = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
        let mut errors: Vec<&str> = Vec::new();
        for (_, m) in msgs.iter().filter(|(l, _)| *l <= LEVEL_ERR) {
            if !errors.contains(&m.as_str()) {
                errors.push(m);
            }
        }
        if !errors.is_empty() {
            return Some(errors.join("; "));
        }
        msgs.iter()
            .rev()
            .find(|(l, _)| *l <= LEVEL_WARN)
            .map(|(_, m)| m.clone())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURED.with(|c| *c.borrow_mut() = None);
    }
}

/// Logs (or captures) one message. `prefix` names the device.
pub(crate) fn emit(level: c_int, prefix: &str, func: &str, line: c_int, text: &str) {
    let text = text.trim_end();
    let captured = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(v) if level <= LEVEL_WARN => {
            v.push((level, text.to_string()));
            true
        }
        _ => false,
    });
    let level = match level {
        _ if captured => log::Level::Debug,
        LEVEL_CRIT | LEVEL_ERR => log::Level::Error,
        LEVEL_WARN => log::Level::Warn,
        LEVEL_INFO => log::Level::Info,
        _ => log::Level::Debug,
    };
    log::log!(target: "tcmu", level, "{prefix}{func}:{line}: {text}");
}

/// The text of a C string, lossily, or "" for NULL.
///
/// # Safety
/// `s` must be NULL or NUL-terminated.
unsafe fn text<'a>(s: *const c_char) -> std::borrow::Cow<'a, str> {
    if s.is_null() {
        return "".into();
    }
    // SAFETY: per the contract.
    unsafe { CStr::from_ptr(s) }.to_string_lossy()
}

/// The sink of `csrc/shim.c`: one formatted message of a handler.
#[no_mangle]
extern "C" fn ustgt_tcmu_log_sink(
    level: c_int,
    dev: DevPtr,
    func: *const c_char,
    line: c_int,
    msg: *const c_char,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the shim passes the handler's device pointer (or NULL) and NUL-terminated
        // strings (the function name from __func__, the formatted message).
        let (dev, func, msg) = unsafe { (HostDevice::from_ptr(dev), text(func), text(msg)) };
        let prefix = dev.map_or(String::new(), |d| format!("{}: ", d.name()));
        emit(level, &prefix, &func, line, &msg);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_prefers_errors_then_warnings() {
        let cap = Capture::start();
        emit(LEVEL_WARN, "", "f", 1, "not qcow: will treat as raw");
        emit(LEVEL_ERR, "", "f", 2, "size misconfigured\n");
        emit(7, "", "f", 3, "debug");
        emit(LEVEL_ERR, "", "f", 4, "image open failed");
        emit(LEVEL_ERR, "", "f", 5, "image open failed");
        assert_eq!(
            cap.finish().as_deref(),
            Some("size misconfigured; image open failed")
        );
        let cap = Capture::start();
        emit(LEVEL_WARN, "", "f", 1, "only a warning");
        assert_eq!(cap.finish().as_deref(), Some("only a warning"));
        let cap = Capture::start();
        drop(cap);
        emit(LEVEL_ERR, "", "f", 1, "logged, not captured");
        assert!(CAPTURED.with(|c| c.borrow().is_none()));
    }

    #[test]
    fn sink_accepts_null_pointers() {
        ustgt_tcmu_log_sink(
            LEVEL_ERR,
            std::ptr::null_mut(),
            std::ptr::null(),
            0,
            std::ptr::null(),
        );
        let cap = Capture::start();
        ustgt_tcmu_log_sink(
            LEVEL_ERR,
            std::ptr::null_mut(),
            c"open".as_ptr(),
            9,
            c"bad".as_ptr(),
        );
        assert_eq!(cap.finish().as_deref(), Some("bad"));
    }
}
