//! The server's access policy, from the settings of `auth.rs`: which initiator may open a
//! discovery session or log in to which target, with which CHAP credentials, and the LUN table
//! each listed initiator sees.
//!
//! Rules: a target without an access list admits every initiator; with one, only the listed
//! initiators (others get login status 0x0202 and do not see the target in SendTargets). An
//! initiator that may use no target cannot open a discovery session either. A listed
//! initiator's own `chap`/`mutual-chap` replace the target's. Names compare
//! case-insensitively.

use std::collections::HashMap;
use std::sync::Arc;

use scsi_core::LunTable;
use ustgt_target::{AccessPolicy, AuthPolicy, ChapCredential, ExportedTarget};

use crate::auth::{AclEntry, AuthConfig, ChapSettings, TargetAccess};
use crate::config::TargetSpec;

/// The access policy of a running server.
#[derive(Debug)]
pub struct Access {
    discovery: ChapSettings,
    /// By lowercase target name.
    targets: HashMap<String, TargetAccess>,
}

impl Access {
    /// The policy of these settings, or `None` when they ask for nothing (every initiator logs
    /// in without authentication, as without a policy).
    pub fn new(auth: &AuthConfig, targets: &[TargetSpec]) -> Option<Access> {
        let open = |t: &TargetAccess| t.acl.is_none() && t.chap == ChapSettings::default();
        if auth.discovery == ChapSettings::default() && targets.iter().all(|t| open(&t.access)) {
            return None;
        }
        Some(Access {
            discovery: auth.discovery.clone(),
            targets: targets
                .iter()
                .map(|t| (t.iqn.to_ascii_lowercase(), t.access.clone()))
                .collect(),
        })
    }
}

impl AccessPolicy for Access {
    fn decide(&self, initiator: &str, target: Option<&str>) -> AuthPolicy {
        match target {
            None if self.targets.values().any(|t| admits(t, initiator)) => {
                policy(&self.discovery.users, self.discovery.mutual.as_ref())
            }
            None => AuthPolicy::Deny,
            Some(name) => match self.targets.get(&name.to_ascii_lowercase()) {
                Some(t) => target_policy(t, initiator),
                None => AuthPolicy::Deny,
            },
        }
    }
}

/// The access list entry of `initiator`: `Ok(None)` when the target has no list, `Err` when
/// the list does not name it.
fn entry<'a>(t: &'a TargetAccess, initiator: &str) -> Result<Option<&'a AclEntry>, ()> {
    match &t.acl {
        None => Ok(None),
        Some(list) => list
            .iter()
            .find(|e| e.initiator.eq_ignore_ascii_case(initiator))
            .map(Some)
            .ok_or(()),
    }
}

fn admits(t: &TargetAccess, initiator: &str) -> bool {
    entry(t, initiator).is_ok()
}

fn target_policy(t: &TargetAccess, initiator: &str) -> AuthPolicy {
    let Ok(e) = entry(t, initiator) else {
        return AuthPolicy::Deny;
    };
    let users = e.and_then(|e| e.chap.as_deref()).unwrap_or(&t.chap.users);
    let mutual = e.and_then(|e| e.mutual.as_ref()).or(t.chap.mutual.as_ref());
    policy(users, mutual)
}

fn policy(users: &[ChapCredential], mutual: Option<&ChapCredential>) -> AuthPolicy {
    if users.is_empty() {
        return AuthPolicy::Open;
    }
    AuthPolicy::Chap {
        users: users.to_vec(),
        mutual: mutual.cloned(),
        algorithms: Vec::new(),
    }
}

/// A LUN table of one initiator on one target: (target name, initiator name, table).
pub type LunView = (String, String, Arc<LunTable>);

/// The tables of initiators whose access list entry maps LUNs, built from the devices of the
/// exported targets (`targets[i]` is `specs[i]`). Mappings were checked against the target's
/// LUNs when the configuration was read; a missing device is skipped.
pub fn lun_views(specs: &[TargetSpec], targets: &[ExportedTarget]) -> Vec<LunView> {
    let mut views = Vec::new();
    for (spec, exported) in specs.iter().zip(targets) {
        for e in spec.access.acl.iter().flatten() {
            let Some(map) = &e.luns else {
                continue;
            };
            let luns = map
                .iter()
                .filter_map(|&(own, theirs)| exported.luns.device(theirs).map(|d| (own, d)))
                .collect();
            let table = Arc::new(LunTable::new(luns));
            views.push((spec.iqn.clone(), e.initiator.clone(), table));
        }
    }
    views
}

/// One line per target (and one for discovery) saying what the policy asks, for the start-up
/// log. Names users, never secrets.
pub fn describe(auth: &AuthConfig, targets: &[TargetSpec]) -> Vec<String> {
    let mut lines = vec![format!("discovery: {}", describe_chap(&auth.discovery))];
    for t in targets {
        let acl = match &t.access.acl {
            None => "any initiator".to_string(),
            Some(list) => {
                let names: Vec<String> = list.iter().map(describe_entry).collect();
                format!("only {}", names.join(", "))
            }
        };
        lines.push(format!(
            "target {}: {}; {acl}",
            t.iqn,
            describe_chap(&t.access.chap)
        ));
    }
    lines
}

fn describe_chap(c: &ChapSettings) -> String {
    if c.users.is_empty() {
        return "no authentication".into();
    }
    let users: Vec<&str> = c.users.iter().map(|u| u.user.as_str()).collect();
    match &c.mutual {
        Some(m) => format!(
            "mutual CHAP (users {}; target user {})",
            users.join(", "),
            m.user
        ),
        None => format!("CHAP (users {})", users.join(", ")),
    }
}

fn describe_entry(e: &AclEntry) -> String {
    let mut s = e.initiator.clone();
    if let Some(users) = &e.chap {
        let names: Vec<&str> = users.iter().map(|u| u.user.as_str()).collect();
        s.push_str(&format!(" (CHAP users {})", names.join(", ")));
    }
    if let Some(map) = &e.luns {
        let luns: Vec<String> = map.iter().map(|(own, t)| format!("{own}={t}")).collect();
        s.push_str(&format!(" [LUNs {}]", luns.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "iqn.2026-11.io.ustgt:one";
    const T2: &str = "iqn.2026-11.io.ustgt:two";
    const A: &str = "iqn.2026-11.io.x:a";
    const B: &str = "iqn.2026-11.io.x:b";

    fn cred(user: &str) -> ChapCredential {
        ChapCredential::new(user, format!("{user}-secret-0123"))
    }

    fn spec(iqn: &str, access: TargetAccess) -> TargetSpec {
        TargetSpec {
            iqn: iqn.into(),
            alias: None,
            luns: Vec::new(),
            access,
        }
    }

    fn entry(initiator: &str, chap: Option<Vec<ChapCredential>>) -> AclEntry {
        AclEntry {
            initiator: initiator.into(),
            chap,
            mutual: None,
            luns: None,
        }
    }

    fn users(p: &AuthPolicy) -> Vec<String> {
        match p {
            AuthPolicy::Chap { users, .. } => users.iter().map(|u| u.user.clone()).collect(),
            other => panic!("not CHAP: {other:?}"),
        }
    }

    #[test]
    fn nothing_configured_means_no_policy() {
        let targets = [spec(T1, TargetAccess::default())];
        assert!(Access::new(&AuthConfig::default(), &targets).is_none());
    }

    #[test]
    fn acl_entries_admit_and_override_chap() {
        let t1 = TargetAccess {
            chap: ChapSettings {
                users: vec![cred("shared")],
                mutual: Some(cred("tgt")),
            },
            acl: Some(vec![entry(A, None), entry(B, Some(vec![cred("bee")]))]),
        };
        let targets = [spec(T1, t1), spec(T2, TargetAccess::default())];
        let access = Access::new(&AuthConfig::default(), &targets).expect("policy");
        let a = access.decide(&A.to_uppercase(), Some(T1));
        assert_eq!(users(&a), vec!["shared"]);
        let b = access.decide(B, Some(&T1.to_uppercase()));
        assert_eq!(users(&b), vec!["bee"]);
        let AuthPolicy::Chap { mutual, .. } = b else {
            unreachable!()
        };
        assert_eq!(mutual.map(|m| m.user), Some("tgt".to_string()));
        let other = "iqn.2026-11.io.x:c";
        assert_eq!(access.decide(other, Some(T1)), AuthPolicy::Deny);
        assert_eq!(access.decide(other, Some(T2)), AuthPolicy::Open);
        assert_eq!(
            access.decide(A, Some("iqn.2026-11.io.ustgt:nope")),
            AuthPolicy::Deny
        );
        assert_eq!(
            access.decide(other, None),
            AuthPolicy::Open,
            "T2 is open to all"
        );
    }

    #[test]
    fn discovery_needs_a_usable_target_and_its_own_chap() {
        let t1 = TargetAccess {
            acl: Some(vec![entry(A, None)]),
            ..Default::default()
        };
        let auth = AuthConfig {
            discovery: ChapSettings {
                users: vec![cred("disc")],
                mutual: None,
            },
            warnings: Vec::new(),
            secrets_inline: false,
        };
        let access = Access::new(&auth, &[spec(T1, t1)]).expect("policy");
        assert_eq!(users(&access.decide(A, None)), vec!["disc"]);
        assert_eq!(access.decide(B, None), AuthPolicy::Deny);
        assert_eq!(access.decide(A, Some(T1)), AuthPolicy::Open);
    }

    #[test]
    fn descriptions_name_users_not_secrets() {
        let t1 = TargetAccess {
            chap: ChapSettings {
                users: vec![cred("alice")],
                mutual: Some(cred("tgt")),
            },
            acl: Some(vec![AclEntry {
                luns: Some(vec![(0, 3)]),
                ..entry(A, Some(vec![cred("own")]))
            }]),
        };
        let targets = [spec(T1, t1)];
        let lines = describe(&AuthConfig::default(), &targets).join("\n");
        assert!(
            lines.contains("mutual CHAP (users alice; target user tgt)"),
            "{lines}"
        );
        assert!(lines.contains("(CHAP users own) [LUNs 0=3]"), "{lines}");
        assert!(!lines.contains("secret"), "{lines}");
        let access = Access::new(&AuthConfig::default(), &targets).expect("policy");
        assert!(!format!("{access:?}").contains("secret-0123"));
    }
}
