use super::*;

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn neg() -> Negotiator {
    Negotiator::new(&Limits::default(), &["None"])
}

fn one(n: &mut Negotiator, k: &str, v: &str, stage: Stage) -> Option<String> {
    let out = n.process(&kv(&[(k, v)]), stage).expect("negotiation");
    out.into_iter().find(|(key, _)| key == k).map(|(_, v)| v)
}

fn op(k: &str, v: &str) -> Option<String> {
    one(&mut neg(), k, v, Stage::Operational)
}

#[test]
fn table_has_every_rfc7143_key_once() {
    let names = [
        "HeaderDigest",
        "DataDigest",
        "MaxConnections",
        "SendTargets",
        "TargetName",
        "InitiatorName",
        "TargetAlias",
        "InitiatorAlias",
        "TargetAddress",
        "TargetPortalGroupTag",
        "InitialR2T",
        "ImmediateData",
        "MaxRecvDataSegmentLength",
        "MaxBurstLength",
        "FirstBurstLength",
        "DefaultTime2Wait",
        "DefaultTime2Retain",
        "MaxOutstandingR2T",
        "DataPDUInOrder",
        "DataSequenceInOrder",
        "ErrorRecoveryLevel",
        "SessionType",
        "AuthMethod",
        "OFMarker",
        "IFMarker",
        "OFMarkInt",
        "IFMarkInt",
        "TaskReporting",
        "iSCSIProtocolLevel",
    ];
    for n in names {
        assert_eq!(KEYS.iter().filter(|k| k.name == n).count(), 1, "{n}");
    }
    assert_eq!(lookup("MaxBurstLength").map(|k| k.default), Some("262144"));
    assert_eq!(
        lookup("HeaderDigest").map(|k| k.scope),
        Some(Scope::Connection)
    );
    assert_eq!(lookup("MaxBurstLength").map(|k| k.leading_only), Some(true));
    assert_eq!(lookup("AuthMethod").map(|k| k.phase), Some(Phase::Security));
    assert!(
        lookup("maxburstlength").is_none(),
        "keys are case-sensitive"
    );
}

#[test]
fn numbers_decimal_and_hex() {
    assert_eq!(parse_number("8192"), Some(8192));
    assert_eq!(parse_number("0x2000"), Some(8192));
    assert_eq!(parse_number("0X10"), Some(16));
    assert_eq!(parse_number(""), None);
    assert_eq!(parse_number("0x"), None);
    assert_eq!(parse_number("-1"), None);
    assert_eq!(parse_number("12a"), None);
    assert_eq!(parse_number("99999999999999999999999"), None);
}

#[test]
fn header_digest_first_supported_of_list() {
    assert_eq!(op("HeaderDigest", "CRC32C,None").as_deref(), Some("CRC32C"));
    assert_eq!(op("HeaderDigest", "None,CRC32C").as_deref(), Some("None"));
    assert_eq!(op("HeaderDigest", "CRC32C").as_deref(), Some("CRC32C"));
    assert_eq!(op("HeaderDigest", "MD5,CRC32C").as_deref(), Some("CRC32C"));
    assert_eq!(op("HeaderDigest", "MD5").as_deref(), Some("Reject"));
    let mut n = neg();
    one(&mut n, "DataDigest", "CRC32C,None", Stage::Operational);
    assert!(n.params.data_digest);
    assert!(!n.params.header_digest);
}

#[test]
fn max_connections_is_min_with_one() {
    assert_eq!(op("MaxConnections", "8").as_deref(), Some("1"));
    assert_eq!(op("MaxConnections", "1").as_deref(), Some("1"));
    assert_eq!(op("MaxConnections", "0").as_deref(), Some("Reject"));
    assert_eq!(op("MaxConnections", "65536").as_deref(), Some("Reject"));
}

#[test]
fn boolean_or_and() {
    // InitialR2T: OR with ours (No by default).
    assert_eq!(op("InitialR2T", "No").as_deref(), Some("No"));
    assert_eq!(op("InitialR2T", "Yes").as_deref(), Some("Yes"));
    // ImmediateData: AND with ours (Yes).
    assert_eq!(op("ImmediateData", "Yes").as_deref(), Some("Yes"));
    assert_eq!(op("ImmediateData", "No").as_deref(), Some("No"));
    assert_eq!(op("ImmediateData", "yes").as_deref(), Some("Reject"));
    // In-order keys: we insist on Yes (OR).
    assert_eq!(op("DataPDUInOrder", "No").as_deref(), Some("Yes"));
    assert_eq!(op("DataSequenceInOrder", "No").as_deref(), Some("Yes"));
    let limits = Limits {
        immediate_data: false,
        initial_r2t: true,
        ..Limits::default()
    };
    let mut n = Negotiator::new(&limits, &["None"]);
    assert_eq!(
        one(&mut n, "ImmediateData", "Yes", Stage::Operational).as_deref(),
        Some("No")
    );
    assert_eq!(
        one(&mut n, "InitialR2T", "No", Stage::Operational).as_deref(),
        Some("Yes")
    );
    assert!(!n.params.immediate_data && n.params.initial_r2t);
}

#[test]
fn numeric_min_max_and_ranges() {
    assert_eq!(op("MaxBurstLength", "262144").as_deref(), Some("262144"));
    assert_eq!(op("MaxBurstLength", "16776192").as_deref(), Some("1048576"));
    assert_eq!(op("MaxBurstLength", "511").as_deref(), Some("Reject"));
    assert_eq!(op("MaxBurstLength", "16777216").as_deref(), Some("Reject"));
    assert_eq!(op("FirstBurstLength", "262144").as_deref(), Some("65536"));
    assert_eq!(op("DefaultTime2Wait", "0").as_deref(), Some("2"));
    assert_eq!(op("DefaultTime2Wait", "10").as_deref(), Some("10"));
    assert_eq!(op("DefaultTime2Wait", "3601").as_deref(), Some("Reject"));
    assert_eq!(op("DefaultTime2Retain", "0").as_deref(), Some("0"));
    assert_eq!(op("DefaultTime2Retain", "3600").as_deref(), Some("20"));
    assert_eq!(op("MaxOutstandingR2T", "16").as_deref(), Some("4"));
    assert_eq!(op("MaxOutstandingR2T", "0").as_deref(), Some("Reject"));
    assert_eq!(op("ErrorRecoveryLevel", "2").as_deref(), Some("0"));
    assert_eq!(op("ErrorRecoveryLevel", "3").as_deref(), Some("Reject"));
    assert_eq!(op("iSCSIProtocolLevel", "2").as_deref(), Some("1"));
    assert_eq!(op("iSCSIProtocolLevel", "0").as_deref(), Some("0"));
    assert_eq!(op("iSCSIProtocolLevel", "32").as_deref(), Some("Reject"));
    assert_eq!(op("MaxBurstLength", "0x40000").as_deref(), Some("262144"));
    assert_eq!(op("MaxBurstLength", "lots").as_deref(), Some("Reject"));
}

#[test]
fn first_burst_never_exceeds_max_burst() {
    let mut n = neg();
    let out = n
        .process(
            &kv(&[("FirstBurstLength", "65536"), ("MaxBurstLength", "16384")]),
            Stage::Operational,
        )
        .unwrap();
    assert_eq!(
        out,
        kv(&[("FirstBurstLength", "16384"), ("MaxBurstLength", "16384")])
    );
    assert_eq!(n.params.first_burst, 16384);
    assert_eq!(n.params.max_burst, 16384);
}

#[test]
fn declarative_keys_are_not_answered() {
    let mut n = neg();
    let out = n
        .process(
            &kv(&[
                ("InitiatorName", "iqn.1993-08.org.debian:01:abc"),
                ("InitiatorAlias", "host"),
                ("SessionType", "Normal"),
                ("TargetName", "iqn.2024-01.ustgt:disk"),
                ("MaxRecvDataSegmentLength", "65536"),
            ]),
            Stage::Security,
        )
        .unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(
        n.identity.initiator_name.as_deref(),
        Some("iqn.1993-08.org.debian:01:abc")
    );
    assert_eq!(n.identity.initiator_alias.as_deref(), Some("host"));
    assert_eq!(
        n.identity.target_name.as_deref(),
        Some("iqn.2024-01.ustgt:disk")
    );
    assert_eq!(n.identity.session_type, Some(SessionType::Normal));
    assert_eq!(n.params.initiator_mrdsl, 65536);
}

#[test]
fn mrdsl_out_of_range_rejected_and_allowed_in_ffp() {
    assert_eq!(
        op("MaxRecvDataSegmentLength", "100").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        op("MaxRecvDataSegmentLength", "16777216").as_deref(),
        Some("Reject")
    );
    let mut n = neg();
    assert_eq!(
        one(
            &mut n,
            "MaxRecvDataSegmentLength",
            "4096",
            Stage::FullFeature
        ),
        None
    );
    assert_eq!(n.params.initiator_mrdsl, 4096);
}

#[test]
fn our_mrdsl_declared_once_outside_security() {
    let mut n = neg();
    assert!(n.declarations(Stage::Security).is_empty());
    assert_eq!(
        n.declarations(Stage::Operational),
        kv(&[("MaxRecvDataSegmentLength", "262144")])
    );
    assert!(n.declarations(Stage::Operational).is_empty());
    assert!(n.mrdsl_declared());
}

#[test]
fn obsolete_marker_keys_rejected() {
    for k in ["OFMarker", "IFMarker", "OFMarkInt", "IFMarkInt"] {
        assert_eq!(op(k, "No").as_deref(), Some("Reject"), "{k}");
    }
    assert_eq!(op("OFMarkInt", "2048~8192").as_deref(), Some("Reject"));
}

#[test]
fn vendor_and_unknown_keys_not_understood() {
    assert_eq!(
        op("X-com.example.Foo", "1").as_deref(),
        Some("NotUnderstood")
    );
    assert_eq!(op("X#dev.thing", "1").as_deref(), Some("NotUnderstood"));
    assert_eq!(op("FooBar", "1").as_deref(), Some("NotUnderstood"));
}

#[test]
fn target_only_keys_from_initiator_rejected() {
    assert_eq!(op("TargetAlias", "x").as_deref(), Some("Reject"));
    assert_eq!(op("TargetAddress", "1.2.3.4").as_deref(), Some("Reject"));
    assert_eq!(op("TargetPortalGroupTag", "1").as_deref(), Some("Reject"));
}

#[test]
fn phase_rules() {
    // Login-only key in full feature phase.
    let mut n = neg();
    assert_eq!(
        one(&mut n, "MaxBurstLength", "4096", Stage::FullFeature).as_deref(),
        Some("Reject")
    );
    // Security-only key outside security.
    assert_eq!(op("AuthMethod", "None").as_deref(), Some("Reject"));
    // FFP-only key during login.
    assert_eq!(op("SendTargets", "All").as_deref(), Some("Reject"));
}

#[test]
fn auth_method_picks_supported() {
    let mut n = neg();
    assert_eq!(
        one(&mut n, "AuthMethod", "CHAP,None", Stage::Security).as_deref(),
        Some("None")
    );
    assert_eq!(n.identity.auth_method.as_deref(), Some("None"));
    let mut n = neg();
    assert_eq!(
        one(&mut n, "AuthMethod", "CHAP", Stage::Security).as_deref(),
        Some("Reject")
    );
    let mut n = Negotiator::new(&Limits::default(), &["CHAP"]);
    assert_eq!(
        one(&mut n, "AuthMethod", "None,CHAP", Stage::Security).as_deref(),
        Some("CHAP")
    );
    let out = n.process(&kv(&[("CHAP_A", "5")]), Stage::Security).unwrap();
    assert!(out.is_empty());
    assert_eq!(n.auth_keys, kv(&[("CHAP_A", "5")]));
}

#[test]
fn task_reporting_list() {
    assert_eq!(
        op("TaskReporting", "FastAbort,RFC3720").as_deref(),
        Some("RFC3720")
    );
    assert_eq!(op("TaskReporting", "FastAbort").as_deref(), Some("Reject"));
}

#[test]
fn discovery_makes_session_data_keys_irrelevant() {
    let mut n = neg();
    let out = n
        .process(
            &kv(&[
                ("MaxBurstLength", "4096"),
                ("SessionType", "Discovery"),
                ("InitialR2T", "Yes"),
                ("HeaderDigest", "None"),
                ("MaxConnections", "1"),
            ]),
            Stage::Operational,
        )
        .unwrap();
    assert_eq!(
        out,
        kv(&[
            ("MaxBurstLength", "Irrelevant"),
            ("InitialR2T", "Irrelevant"),
            ("HeaderDigest", "None"),
            ("MaxConnections", "Irrelevant"),
        ])
    );
    assert!(n.discovery());
}

#[test]
fn duplicate_key_fails() {
    let mut n = neg();
    n.process(&kv(&[("MaxBurstLength", "4096")]), Stage::Operational)
        .unwrap();
    let err = n.process(&kv(&[("MaxBurstLength", "8192")]), Stage::Operational);
    assert_eq!(err, Err(NegError::DuplicateKey("MaxBurstLength".into())));
    let mut n = neg();
    let err = n.process(
        &kv(&[("HeaderDigest", "None"), ("HeaderDigest", "None")]),
        Stage::Operational,
    );
    assert!(matches!(err, Err(NegError::DuplicateKey(_))));
    // The same value again in a later request is tolerated.
    let mut n = neg();
    n.process(&kv(&[("InitiatorName", "iqn.x:a")]), Stage::Security)
        .unwrap();
    assert!(n
        .process(&kv(&[("InitiatorName", "iqn.x:a")]), Stage::Operational)
        .is_ok());
    assert!(n
        .process(&kv(&[("InitiatorName", "iqn.x:b")]), Stage::Operational)
        .is_err());
    // A new FFP exchange starts clean.
    n.begin_exchange();
    assert!(n
        .process(&kv(&[("HeaderDigest", "None")]), Stage::Operational)
        .is_ok());
}

#[test]
fn bad_session_type() {
    let mut n = neg();
    assert_eq!(
        n.process(&kv(&[("SessionType", "Weird")]), Stage::Security),
        Err(NegError::BadSessionType("Weird".into()))
    );
}

#[test]
fn special_values_as_offers_rejected() {
    assert_eq!(
        op("MaxBurstLength", "Irrelevant").as_deref(),
        Some("Reject")
    );
    assert_eq!(
        op("HeaderDigest", "NotUnderstood").as_deref(),
        Some("Reject")
    );
}

#[test]
fn proposals_for_stricter_limits_and_answers() {
    let limits = Limits {
        immediate_data: false,
        max_burst: 65536,
        first_burst: 8192,
        ..Limits::default()
    };
    let mut n = Negotiator::new(&limits, &["None"]);
    n.process(&kv(&[("MaxBurstLength", "65536")]), Stage::Operational)
        .unwrap();
    let p = n.proposals();
    assert_eq!(
        p,
        kv(&[("ImmediateData", "No"), ("FirstBurstLength", "8192")])
    );
    assert!(n.awaiting_answers());
    let out = n
        .process(
            &kv(&[("ImmediateData", "No"), ("FirstBurstLength", "4096")]),
            Stage::Operational,
        )
        .unwrap();
    assert!(out.is_empty(), "answers are not answered: {out:?}");
    assert!(!n.awaiting_answers());
    assert!(!n.params.immediate_data);
    assert_eq!(n.params.first_burst, 4096);
    assert!(n.proposals().is_empty());
    // Defaults suffice: nothing to propose.
    assert!(neg().proposals().is_empty());
}

#[test]
fn values_over_255_bytes_are_rejected_except_large_binary() {
    let long = "a".repeat(MAX_SIMPLE_VALUE + 1);
    let mut n = neg();
    assert_eq!(
        one(&mut n, "InitiatorAlias", &long, Stage::Security).as_deref(),
        Some("Reject")
    );
    assert_eq!(n.identity.initiator_alias, None);
    assert_eq!(
        op("MaxBurstLength", &"9".repeat(256)).as_deref(),
        Some("Reject")
    );
    assert_eq!(op("HeaderDigest", &long).as_deref(), Some("Reject"));
    // 255 bytes are fine.
    let mut n = neg();
    let ok = "b".repeat(MAX_SIMPLE_VALUE);
    assert_eq!(one(&mut n, "InitiatorAlias", &ok, Stage::Security), None);
    assert_eq!(n.identity.initiator_alias.as_deref(), Some(ok.as_str()));
}
