//! handler_rbd.so's configuration string, and the size of its RBD image.
//!
//! The rbd handler does not report a size: its `open` fails unless block size × number of
//! blocks equals the image size exactly. So before opening the device the host asks the
//! cluster itself, through the librados and librbd that handler_rbd.so links (both are
//! loaded with it), with the same configuration file and client id the handler will use.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io;
use std::sync::OnceLock;

/// Seconds the size query waits for the monitors and OSDs before giving up (librados would
/// otherwise wait 300 s for an unreachable cluster).
const QUERY_TIMEOUT_S: &CStr = c"30";

/// What handler_rbd.so reads from `rbd/POOL/IMAGE[;osd_op_timeout=S][;conf=PATH][;id=ID]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbdConfig {
    pub pool: String,
    pub image: String,
    /// The Ceph configuration file (`None`: librados's default search, CEPH_CONF included).
    pub conf: Option<String>,
    /// The client id (`None`: `admin`).
    pub id: Option<String>,
    pub osd_op_timeout: Option<String>,
}

/// Parses the part after `rbd/` as the handler does (`strtok`): the pool runs to the next
/// `/` (leading slashes skipped), the image to the next `;`, then `;`-separated options, of
/// which unknown ones are ignored.
pub fn parse_config(config: &str) -> Result<RbdConfig, String> {
    let rest = config.trim_start_matches('/');
    let (pool, rest) = match rest.split_once('/') {
        Some((pool, rest)) if !pool.is_empty() => (pool, rest),
        _ => {
            return Err(format!(
                "the rbd configuration \"{config}\" names no image (expected POOL/IMAGE\
                 [;conf=PATH][;id=ID][;osd_op_timeout=S])"
            ))
        }
    };
    let mut parts = rest.split(';').filter(|p| !p.is_empty());
    let Some(image) = parts.next() else {
        return Err(format!(
            "the rbd configuration \"{config}\" names no image in pool \"{pool}\""
        ));
    };
    let mut cfg = RbdConfig {
        pool: pool.to_string(),
        image: image.to_string(),
        conf: None,
        id: None,
        osd_op_timeout: None,
    };
    for opt in parts {
        let (slot, value) = if let Some(v) = opt.strip_prefix("conf=") {
            (&mut cfg.conf, v)
        } else if let Some(v) = opt.strip_prefix("id=") {
            (&mut cfg.id, v)
        } else if let Some(v) = opt.strip_prefix("osd_op_timeout=") {
            (&mut cfg.osd_op_timeout, v)
        } else {
            continue;
        };
        if value.is_empty() {
            return Err(format!("the rbd option \"{opt}\" has no value"));
        }
        *slot = Some(value.to_string());
    }
    Ok(cfg)
}

type RadosCreate = unsafe extern "C" fn(*mut *mut c_void, *const c_char) -> c_int;
type RadosConfReadFile = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
type RadosConfSet = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type RadosConnect = unsafe extern "C" fn(*mut c_void) -> c_int;
type RadosIoctxCreate = unsafe extern "C" fn(*mut c_void, *const c_char, *mut *mut c_void) -> c_int;
type RadosVoid = unsafe extern "C" fn(*mut c_void);
type RbdOpenReadOnly =
    unsafe extern "C" fn(*mut c_void, *const c_char, *mut *mut c_void, *const c_char) -> c_int;
type RbdGetSize = unsafe extern "C" fn(*mut c_void, *mut u64) -> c_int;
type RbdClose = unsafe extern "C" fn(*mut c_void) -> c_int;

/// The few librados and librbd functions the size query needs.
struct Librbd {
    create: RadosCreate,
    conf_read_file: RadosConfReadFile,
    conf_set: RadosConfSet,
    connect: RadosConnect,
    ioctx_create: RadosIoctxCreate,
    ioctx_destroy: RadosVoid,
    shutdown: RadosVoid,
    open_read_only: RbdOpenReadOnly,
    get_size: RbdGetSize,
    close: RbdClose,
}

/// The dynamic loader's last error.
fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string, copied at once.
    let msg = unsafe { libc::dlerror() };
    if msg.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: non-NULL and NUL-terminated.
    unsafe { CStr::from_ptr(msg) }
        .to_string_lossy()
        .into_owned()
}

/// A symbol of `lib` as a function pointer of type `F`.
///
/// # Safety
/// `lib` must be a live handle and `F` the symbol's C function type.
unsafe fn symbol<F: Copy>(lib: *mut c_void, name: &CStr) -> Result<F, String> {
    // SAFETY: a live handle and a NUL-terminated name.
    let sym = unsafe { libc::dlsym(lib, name.as_ptr()) };
    if sym.is_null() {
        return Err(format!(
            "{} not found: {}",
            name.to_string_lossy(),
            dl_error()
        ));
    }
    debug_assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
    // SAFETY: per the contract, `F` is the function pointer type of this symbol.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&sym) })
}

/// Loads librados.so.2 and librbd.so.1 (once per process; never unloaded).
fn librbd() -> Result<&'static Librbd, String> {
    static LIB: OnceLock<Result<Librbd, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let open = |name: &CStr| {
            // SAFETY: a NUL-terminated library name; the libraries are those the rbd
            // handler links, already loaded with it.
            let lib = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if lib.is_null() {
                Err(format!(
                    "cannot load {}: {}",
                    name.to_string_lossy(),
                    dl_error()
                ))
            } else {
                Ok(lib)
            }
        };
        let rados = open(c"librados.so.2")?;
        let rbd = open(c"librbd.so.1")?;
        // SAFETY: live handles; each type is the C prototype of the symbol in librados.h
        // and librbd.h.
        unsafe {
            Ok(Librbd {
                create: symbol(rados, c"rados_create")?,
                conf_read_file: symbol(rados, c"rados_conf_read_file")?,
                conf_set: symbol(rados, c"rados_conf_set")?,
                connect: symbol(rados, c"rados_connect")?,
                ioctx_create: symbol(rados, c"rados_ioctx_create")?,
                ioctx_destroy: symbol(rados, c"rados_ioctx_destroy")?,
                shutdown: symbol(rados, c"rados_shutdown")?,
                open_read_only: symbol(rbd, c"rbd_open_read_only")?,
                get_size: symbol(rbd, c"rbd_get_size")?,
                close: symbol(rbd, c"rbd_close")?,
            })
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A negative errno as text.
fn errno_text(rc: c_int) -> String {
    io::Error::from_raw_os_error(rc.saturating_neg()).to_string()
}

/// A C string from configuration text.
fn c_string(what: &str, text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("the {what} contains a NUL byte"))
}

/// The size in bytes of the image `cfg` names, read from the cluster (connect, open the
/// image read-only, `rbd_get_size`, close). Errors say which step failed and why.
pub fn image_size(cfg: &RbdConfig) -> Result<u64, String> {
    let lib = librbd()?;
    let id = cfg
        .id
        .as_deref()
        .map(|i| c_string("client id", i))
        .transpose()?;
    let conf = cfg
        .conf
        .as_deref()
        .map(|c| c_string("conf path", c))
        .transpose()?;
    let pool = c_string("pool name", &cfg.pool)?;
    let image = c_string("image name", &cfg.image)?;
    let mut cluster: *mut c_void = std::ptr::null_mut();
    // SAFETY: rados_create with a place for the handle and NULL or a NUL-terminated id.
    let rc = unsafe {
        (lib.create)(
            &mut cluster,
            id.as_ref().map_or(std::ptr::null(), |i| i.as_ptr()),
        )
    };
    if rc < 0 || cluster.is_null() {
        return Err(format!("cannot create a Ceph client: {}", errno_text(rc)));
    }
    let result = (|| {
        // SAFETY: a live cluster handle; NULL (default search) or a NUL-terminated path.
        let rc = unsafe {
            (lib.conf_read_file)(
                cluster,
                conf.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            )
        };
        if rc < 0 {
            if let Some(path) = &cfg.conf {
                return Err(format!(
                    "cannot read the Ceph configuration {path}: {}",
                    errno_text(rc)
                ));
            }
        }
        for opt in [
            c"client_mount_timeout",
            c"rados_mon_op_timeout",
            c"rados_osd_op_timeout",
        ] {
            // SAFETY: a live, unconnected cluster handle and NUL-terminated strings.
            unsafe { (lib.conf_set)(cluster, opt.as_ptr(), QUERY_TIMEOUT_S.as_ptr()) };
        }
        let conf_shown = cfg.conf.as_deref().unwrap_or("the default configuration");
        // SAFETY: a live, configured cluster handle.
        let rc = unsafe { (lib.connect)(cluster) };
        if rc < 0 {
            return Err(format!(
                "cannot connect to the Ceph cluster of {conf_shown}: {}",
                errno_text(rc)
            ));
        }
        let mut ioctx: *mut c_void = std::ptr::null_mut();
        // SAFETY: a connected cluster handle, a NUL-terminated pool name, a place for the
        // I/O context.
        let rc = unsafe { (lib.ioctx_create)(cluster, pool.as_ptr(), &mut ioctx) };
        if rc < 0 {
            return Err(format!(
                "cannot open the pool \"{}\": {}",
                cfg.pool,
                errno_text(rc)
            ));
        }
        let mut img: *mut c_void = std::ptr::null_mut();
        // SAFETY: a live I/O context, a NUL-terminated image name, a place for the image
        // handle, no snapshot.
        let rc = unsafe { (lib.open_read_only)(ioctx, image.as_ptr(), &mut img, std::ptr::null()) };
        let size = if rc < 0 {
            Err(format!(
                "cannot open the image \"{}/{}\": {}",
                cfg.pool,
                cfg.image,
                errno_text(rc)
            ))
        } else {
            let mut size = 0u64;
            // SAFETY: an open image and a place for its size; the image is closed once.
            let rc = unsafe {
                let rc = (lib.get_size)(img, &mut size);
                (lib.close)(img);
                rc
            };
            if rc < 0 {
                Err(format!(
                    "cannot read the size of \"{}/{}\": {}",
                    cfg.pool,
                    cfg.image,
                    errno_text(rc)
                ))
            } else {
                Ok(size)
            }
        };
        // SAFETY: a live I/O context with no image open on it, destroyed once.
        unsafe { (lib.ioctx_destroy)(ioctx) };
        size
    })();
    // SAFETY: the cluster handle from rados_create, shut down once, nothing open on it.
    unsafe { (lib.shutdown)(cluster) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_as_the_handler_does() {
        let c = parse_config("rbd/img").expect("plain");
        assert_eq!((c.pool.as_str(), c.image.as_str()), ("rbd", "img"));
        assert_eq!((c.conf, c.id, c.osd_op_timeout), (None, None, None));
        let c = parse_config("/pool/a/b;conf=/etc/x.conf;;id=tcmu;osd_op_timeout=40;x=y")
            .expect("options");
        assert_eq!(c.pool, "pool");
        assert_eq!(c.image, "a/b", "the image runs to the first ';'");
        assert_eq!(c.conf.as_deref(), Some("/etc/x.conf"));
        assert_eq!(c.id.as_deref(), Some("tcmu"));
        assert_eq!(c.osd_op_timeout.as_deref(), Some("40"));
        for bad in ["pool", "pool/", "/pool", "pool/;", ""] {
            let e = parse_config(bad).expect_err(bad);
            assert!(e.contains("names no image"), "{bad}: {e}");
        }
        let e = parse_config("p/i;conf=").expect_err("empty conf");
        assert!(e.contains("\"conf=\" has no value"), "{e}");
    }

    #[test]
    fn a_missing_configuration_file_is_named() {
        let cfg = parse_config("rbd/img;conf=/nonexistent/ceph.conf").expect("parse");
        match image_size(&cfg) {
            Err(e) if e.starts_with("cannot load") => {} // librbd is not installed
            Err(e) => assert!(
                e.contains("cannot read the Ceph configuration /nonexistent/ceph.conf"),
                "{e}"
            ),
            Ok(size) => panic!("size {size} from a missing configuration"),
        }
    }
}
