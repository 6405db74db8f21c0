use super::*;

const RANDOM: [u8; CHAP_RANDOM_BYTES] = [7; CHAP_RANDOM_BYTES];

#[derive(Debug)]
struct Fixed(AuthPolicy);

impl AccessPolicy for Fixed {
    fn decide(&self, _initiator: &str, _target: Option<&str>) -> AuthPolicy {
        self.0.clone()
    }
}

fn chap_policy(mutual: bool, algorithms: Vec<ChapAlgorithm>) -> AuthPolicy {
    AuthPolicy::Chap {
        users: vec![ChapCredential::new("alice", "alice-secret-1")],
        mutual: mutual.then(|| ChapCredential::new("tgt", "target-secret-2")),
        algorithms,
    }
}

fn auth(policy: AuthPolicy) -> ChapAuthenticator {
    let mut a = ChapAuthenticator::new(Arc::new(Fixed(policy)), RANDOM);
    a.begin("iqn.init", Some("iqn.tgt")).expect("allowed");
    a
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Step 1 with `offer`; returns (algorithm, id, challenge) of the answer.
fn challenged(a: &mut ChapAuthenticator, offer: &str) -> (ChapAlgorithm, u8, Vec<u8>) {
    let AuthStep::Continue(keys) = a.step("CHAP", "iqn.init", None, &kv(&[("CHAP_A", offer)]))
    else {
        panic!("no challenge")
    };
    let alg = ChapAlgorithm::from_code(find(&keys, "CHAP_A").unwrap()).unwrap();
    let id = find(&keys, "CHAP_I").unwrap().parse().unwrap();
    let c = decode_binary(find(&keys, "CHAP_C").unwrap(), 1024).unwrap();
    (alg, id, c)
}

fn answer(a: &mut ChapAuthenticator, user: &str, resp: String, extra: &[(&str, &str)]) -> AuthStep {
    let mut keys = kv(&[("CHAP_N", user)]);
    keys.push(("CHAP_R".into(), resp));
    keys.extend(kv(extra));
    a.step("CHAP", "iqn.init", None, &keys)
}

#[test]
fn digests_match_reference_values() {
    let c: Vec<u8> = (0..16).collect();
    let hex = |a: ChapAlgorithm| to_hex(&a.response(1, b"secret", &c));
    assert_eq!(
        hex(ChapAlgorithm::Md5),
        "0x740e86463bda3a4d7017d6e0fba0699d"
    );
    assert_eq!(
        hex(ChapAlgorithm::Sha1),
        "0x3890198f5112376188a9742805758384545583a6"
    );
    assert_eq!(
        hex(ChapAlgorithm::Sha256),
        "0x28b96c916cf784528bbfaa6ad7e012cab293437604aae8d66a3295b319132cef"
    );
    assert_eq!(
        hex(ChapAlgorithm::Sha3_256),
        "0xbdceca071be509f41acf88309bb6d12e51526c23a2d18f22c2bb8ed199c36fd8"
    );
}

#[test]
fn one_way_chap_with_every_algorithm() {
    for alg in ChapAlgorithm::ALL {
        let mut a = auth(chap_policy(false, vec![]));
        assert_eq!(a.methods(), vec!["CHAP"]);
        let (got, id, c) = challenged(&mut a, &format!("99,{}", alg.code()));
        assert_eq!(got, alg, "the first acceptable offer is chosen");
        assert_eq!(c.len(), alg.digest_len());
        let r = to_hex(&alg.response(id, b"alice-secret-1", &c));
        assert_eq!(answer(&mut a, "alice", r, &[]), AuthStep::Success(vec![]));
        assert_eq!(
            a.step("CHAP", "iqn.init", None, &kv(&[("CHAP_A", "5")])),
            AuthStep::Failure,
            "nothing after success"
        );
    }
}

/// Builds (CHAP_N, CHAP_R) from the identifier and challenge.
type MakeAnswer = dyn Fn(u8, &[u8]) -> (String, String);

#[test]
fn wrong_secret_unknown_user_and_bad_lengths_fail() {
    let bad: Vec<Box<MakeAnswer>> = vec![
        Box::new(|id, c| {
            (
                "alice".into(),
                to_hex(&ChapAlgorithm::Md5.response(id, b"wrong", c)),
            )
        }),
        Box::new(|id, c| {
            let r = ChapAlgorithm::Md5.response(id, b"alice-secret-1", c);
            ("mallory".into(), to_hex(&r))
        }),
        Box::new(|id, c| {
            let r = ChapAlgorithm::Md5.response(id, b"alice-secret-1", c);
            ("alice".into(), to_hex(&r[..15]))
        }),
        Box::new(|id, c| {
            let mut r = ChapAlgorithm::Md5.response(id, b"alice-secret-1", c);
            r.push(0);
            ("alice".into(), to_hex(&r))
        }),
        Box::new(|_, _| ("alice".into(), "0xzz".into())),
        Box::new(|_, _| ("alice".into(), "no-prefix".into())),
    ];
    for (i, make) in bad.iter().enumerate() {
        let mut a = auth(chap_policy(false, vec![]));
        let (_, id, c) = challenged(&mut a, "5");
        let (user, r) = make(id, &c);
        assert_eq!(answer(&mut a, &user, r, &[]), AuthStep::Failure, "case {i}");
        // A failed exchange stays failed.
        let r = to_hex(&ChapAlgorithm::Md5.response(id, b"alice-secret-1", &c));
        assert_eq!(answer(&mut a, "alice", r, &[]), AuthStep::Failure);
    }
}

#[test]
fn base64_and_upper_case_prefixes_are_accepted() {
    let mut a = auth(chap_policy(false, vec![]));
    let (_, id, c) = challenged(&mut a, "5");
    let r = ChapAlgorithm::Md5.response(id, b"alice-secret-1", &c);
    let b64 = format!("0b{}", to_base64(&r));
    assert_eq!(answer(&mut a, "alice", b64, &[]), AuthStep::Success(vec![]));
    let mut a = auth(chap_policy(false, vec![]));
    let (_, id, c) = challenged(&mut a, "5");
    let r = to_hex(&ChapAlgorithm::Md5.response(id, b"alice-secret-1", &c)).replace("0x", "0X");
    assert_eq!(answer(&mut a, "alice", r, &[]), AuthStep::Success(vec![]));
}

#[test]
fn mutual_chap_answers_the_initiator_challenge() {
    let mut a = auth(chap_policy(true, vec![]));
    let (alg, id, c) = challenged(&mut a, "7");
    let r = to_hex(&alg.response(id, b"alice-secret-1", &c));
    let their_c = [0x42u8; 24];
    let step = answer(
        &mut a,
        "alice",
        r,
        &[("CHAP_I", "200"), ("CHAP_C", &to_hex(&their_c))],
    );
    let AuthStep::Success(keys) = step else {
        panic!("{step:?}")
    };
    assert_eq!(find(&keys, "CHAP_N"), Some("tgt"));
    let want = to_hex(&alg.response(200, b"target-secret-2", &their_c));
    assert_eq!(find(&keys, "CHAP_R"), Some(want.as_str()));
}

#[test]
fn mutual_requests_that_must_fail() {
    let cases: &[(bool, &[(&str, &str)])] = &[
        // No target secret configured.
        (false, &[("CHAP_I", "1"), ("CHAP_C", "0x0102030405")]),
        // Only one of the two keys.
        (true, &[("CHAP_I", "1")]),
        (true, &[("CHAP_C", "0x0102")]),
        // Bad identifier, bad or oversized challenge.
        (true, &[("CHAP_I", "256"), ("CHAP_C", "0x0102")]),
        (true, &[("CHAP_I", "-1"), ("CHAP_C", "0x0102")]),
        (true, &[("CHAP_I", "1"), ("CHAP_C", "0x")]),
        (true, &[("CHAP_I", "1"), ("CHAP_C", "0xgg")]),
    ];
    for (i, (mutual, extra)) in cases.iter().enumerate() {
        let mut a = auth(chap_policy(*mutual, vec![]));
        let (alg, id, c) = challenged(&mut a, "5");
        let r = to_hex(&alg.response(id, b"alice-secret-1", &c));
        assert_eq!(
            answer(&mut a, "alice", r, extra),
            AuthStep::Failure,
            "case {i}"
        );
    }
    let long = format!("0x{}", "ab".repeat(MAX_INITIATOR_CHALLENGE + 1));
    let mut a = auth(chap_policy(true, vec![]));
    let (alg, id, c) = challenged(&mut a, "5");
    let r = to_hex(&alg.response(id, b"alice-secret-1", &c));
    assert_eq!(
        answer(&mut a, "alice", r, &[("CHAP_I", "1"), ("CHAP_C", &long)]),
        AuthStep::Failure
    );
}

#[test]
fn a_reflected_challenge_is_refused() {
    let mut a = auth(chap_policy(true, vec![]));
    let (alg, id, c) = challenged(&mut a, "5");
    let r = to_hex(&alg.response(id, b"alice-secret-1", &c));
    let reflected = to_hex(&c);
    assert_eq!(
        answer(
            &mut a,
            "alice",
            r,
            &[("CHAP_I", "9"), ("CHAP_C", &reflected)]
        ),
        AuthStep::Failure
    );
}

#[test]
fn algorithm_negotiation_failures() {
    let mut a = auth(chap_policy(false, vec![]));
    assert_eq!(
        a.step("CHAP", "i", None, &kv(&[("CHAP_A", "1,2,x")])),
        AuthStep::Failure
    );
    let mut a = auth(chap_policy(false, vec![ChapAlgorithm::Md5]));
    assert_eq!(
        a.step("CHAP", "i", None, &kv(&[("CHAP_A", "8,7")])),
        AuthStep::Failure
    );
    let mut a = auth(chap_policy(false, vec![]));
    assert_eq!(
        a.step("CHAP", "i", None, &kv(&[("CHAP_N", "alice")])),
        AuthStep::Failure
    );
}

#[test]
fn deny_and_open_policies() {
    let mut a = ChapAuthenticator::new(Arc::new(Fixed(AuthPolicy::Deny)), RANDOM);
    assert_eq!(a.begin("iqn.x", Some("iqn.t")), Err(0x0202));
    let mut a = ChapAuthenticator::new(Arc::new(Fixed(AuthPolicy::Open)), RANDOM);
    a.begin("iqn.x", None).expect("open");
    assert_eq!(a.methods(), vec!["None"]);
    assert_eq!(
        a.step("None", "iqn.x", None, &[]),
        AuthStep::Success(vec![])
    );
    assert_eq!(
        a.step("CHAP", "iqn.x", None, &kv(&[("CHAP_A", "5")])),
        AuthStep::Failure
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let a = auth(chap_policy(true, vec![]));
    let text = format!("{a:?} {:?}", chap_policy(true, vec![]));
    assert!(
        !text.contains("alice-secret-1") && !text.contains("target-secret-2"),
        "{text}"
    );
}

#[test]
fn binary_value_decoding() {
    assert_eq!(decode_hex("abc"), Some(vec![0x0a, 0xbc]), "odd digit count");
    assert_eq!(decode_binary("0xABCD", 2), Some(vec![0xab, 0xcd]));
    assert_eq!(decode_binary("0xABCDEF", 2), None, "too long");
    assert_eq!(decode_base64("AQID"), Some(vec![1, 2, 3]));
    assert_eq!(decode_base64("AQI="), Some(vec![1, 2]));
    assert_eq!(decode_base64("AQ=="), Some(vec![1]));
    assert_eq!(decode_base64("AQ==AQID"), None, "padding only at the end");
    assert_eq!(decode_base64("AQI"), None, "length not a multiple of 4");
    assert_eq!(decode_base64("A*ID"), None);
    assert_eq!(decode_exact("0x0102", 2), Some(vec![1, 2]));
    assert_eq!(decode_exact("0x102", 2), None, "exact length required");
    assert_eq!(decode_exact("0bAQI=", 2), Some(vec![1, 2]));
    assert_eq!(decode_exact("0", 2), None);
    assert_eq!(decode_exact("", 2), None);
}

fn to_base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}
