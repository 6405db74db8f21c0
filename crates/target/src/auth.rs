//! The authenticator of each new connection: none while the server has no access policy, else
//! CHAP and access control per the policy ([`iscsi_proto::ChapAuthenticator`]) with fresh bytes
//! from the kernel's CSPRNG, so that no two connections (in this process or any earlier one)
//! get the same CHAP challenge.

use std::io::{self, Read};
use std::sync::Arc;

use iscsi_proto::{
    login_status, AccessPolicy, AuthStep, Authenticator, ChapAuthenticator, NoAuth,
    CHAP_RANDOM_BYTES,
};

/// The authenticator of a connection accepted while `access` is the server's policy.
pub fn authenticator(access: Option<&Arc<dyn AccessPolicy>>) -> Box<dyn Authenticator> {
    let Some(access) = access else {
        return Box::new(NoAuth);
    };
    match random_bytes() {
        Ok(random) => Box::new(ChapAuthenticator::new(access.clone(), random)),
        Err(e) => {
            log::error!("cannot read random bytes for a CHAP challenge: {e}; login refused");
            Box::new(Unavailable)
        }
    }
}

/// `CHAP_RANDOM_BYTES` from getrandom(2), or from /dev/urandom where the system call is
/// missing.
fn random_bytes() -> io::Result<[u8; CHAP_RANDOM_BYTES]> {
    let mut buf = [0u8; CHAP_RANDOM_BYTES];
    match getrandom(&mut buf) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
        }
        other => other?,
    }
    Ok(buf)
}

/// Fills `buf` from the kernel's CSPRNG (blocking only until it is first seeded at boot).
fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the whole call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Refuses every login with a target error: used when no random bytes could be read, since a
/// predictable challenge would make CHAP worthless.
#[derive(Debug)]
struct Unavailable;

impl Authenticator for Unavailable {
    fn begin(&mut self, _initiator: &str, _target: Option<&str>) -> Result<(), u16> {
        Err(login_status::TARGET_ERROR)
    }

    fn visible(&self, _initiator: &str, _target: &str) -> bool {
        false
    }

    fn methods(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn step(
        &mut self,
        _method: &str,
        _initiator_name: &str,
        _target_name: Option<&str>,
        _keys: &[(String, String)],
    ) -> AuthStep {
        AuthStep::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_calls() {
        let a = random_bytes().expect("random");
        let b = random_bytes().expect("random");
        assert_ne!(a, b);
        assert_ne!(a, [0; CHAP_RANDOM_BYTES]);
    }

    #[test]
    fn without_a_policy_every_connection_is_open() {
        let auth = authenticator(None);
        assert_eq!(auth.methods(), vec!["None"]);
    }

    #[test]
    fn unavailable_refuses_with_a_target_error() {
        let mut u = Unavailable;
        assert_eq!(
            u.begin("iqn.a", Some("iqn.b")),
            Err(login_status::TARGET_ERROR)
        );
        assert!(!u.visible("iqn.a", "iqn.b"));
        assert!(u.methods().is_empty());
    }
}
