//! Authentication seam for the security negotiation stage (RFC 7143 6.3 and
//! chapter 12): [`NoAuth`] accepts everyone without authentication; CHAP and access control
//! are [`crate::ChapAuthenticator`].

/// The result of one authentication exchange step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// More exchanges are needed; send these keys.
    Continue(Vec<(String, String)>),
    /// The initiator is authenticated; send these final keys (may be empty).
    Success(Vec<(String, String)>),
    /// Authentication failed: login status 0x0201.
    Failure,
}

/// Decides the security negotiation of a login.
pub trait Authenticator: Send + std::fmt::Debug {
    /// Called once per login, as soon as the initiator and target names are known (`target`
    /// is `None` for a discovery session) and before AuthMethod is negotiated: decides what
    /// this login must satisfy. An `Err` is the login status that refuses it at once (e.g.
    /// 0x0202, an initiator not allowed to this target).
    fn begin(&mut self, _initiator: &str, _target: Option<&str>) -> Result<(), u16> {
        Ok(())
    }

    /// Whether `initiator` may learn of `target` through SendTargets (an initiator that may
    /// not log in to a target does not see it in discovery).
    fn visible(&self, _initiator: &str, _target: &str) -> bool {
        true
    }

    /// AuthMethod values we accept, in preference order (e.g. `["CHAP"]` or `["None"]`).
    fn methods(&self) -> Vec<&'static str>;

    /// One step of the method chosen by the AuthMethod negotiation, with the
    /// method-specific keys (`CHAP_*`) of the current request.
    fn step(
        &mut self,
        method: &str,
        initiator_name: &str,
        target_name: Option<&str>,
        keys: &[(String, String)],
    ) -> AuthStep;
}

/// Accepts every initiator without authentication (`AuthMethod=None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl Authenticator for NoAuth {
    fn methods(&self) -> Vec<&'static str> {
        vec!["None"]
    }

    fn step(
        &mut self,
        method: &str,
        _initiator_name: &str,
        _target_name: Option<&str>,
        _keys: &[(String, String)],
    ) -> AuthStep {
        if method == "None" {
            AuthStep::Success(Vec::new())
        } else {
            AuthStep::Failure
        }
    }
}
