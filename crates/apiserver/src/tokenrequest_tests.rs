use super::*;

fn claims(exp_in: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        aud: vec![ISSUER.into()],
        exp: now + exp_in,
        iat: now,
        iss: ISSUER.into(),
        jti: "j".into(),
        kubernetes: KubernetesClaim {
            namespace: "kube-system".into(),
            serviceaccount: Ref {
                name: "coredns".into(),
                uid: "u1".into(),
            },
            pod: Some(Ref {
                name: "coredns-1".into(),
                uid: "p1".into(),
            }),
            node: None,
        },
        nbf: now,
        sub: "system:serviceaccount:kube-system:coredns".into(),
    }
}

fn issuer(dir: &tempfile::TempDir) -> TokenIssuer {
    TokenIssuer::load_or_generate(&dir.path().join(KEY_FILE)).unwrap()
}

#[test]
fn signs_and_verifies_with_a_key_that_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = issuer(&dir);
    let token = first.sign(&claims(3600)).unwrap();
    assert_eq!(token.split('.').count(), 3);
    // A second load reads the same key: the token still verifies.
    let second = issuer(&dir);
    assert_eq!(second.verify(&token, &[ISSUER]), Some(claims_of(&token)));
    let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // Another key does not.
    let other = tempfile::tempdir().unwrap();
    assert_eq!(issuer(&other).verify(&token, &[ISSUER]), None);
}

fn claims_of(token: &str) -> Claims {
    let payload = token.split('.').nth(1).unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn the_wire_claims_are_kube_apiservers() {
    let dir = tempfile::tempdir().unwrap();
    let token = issuer(&dir).sign(&claims(3600)).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v["sub"], "system:serviceaccount:kube-system:coredns");
    assert_eq!(v["kubernetes.io"]["serviceaccount"]["name"], "coredns");
    assert_eq!(v["kubernetes.io"]["pod"]["uid"], "p1");
    assert!(v["kubernetes.io"].get("node").is_none());
    let header = token.split('.').next().unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap();
    let h: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(h["alg"], "ES256");
    assert!(h["kid"].as_str().is_some_and(|k| k.len() == 43));
}

#[test]
fn rejects_expired_foreign_audience_and_tampered_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let iss = issuer(&dir);
    // Beyond the default 60 s leeway.
    let expired = iss.sign(&claims(-120)).unwrap();
    assert_eq!(iss.verify(&expired, &[ISSUER]), None);
    let mut other_aud = claims(3600);
    other_aud.aud = vec!["vault".into()];
    let vault = iss.sign(&other_aud).unwrap();
    assert_eq!(iss.verify(&vault, &[ISSUER]), None);
    assert!(iss.verify(&vault, &["vault"]).is_some());
    let good = iss.sign(&claims(3600)).unwrap();
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut forged = claims(3600);
    forged.sub = "system:serviceaccount:kube-system:admin".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&forged).unwrap(),
    );
    assert_eq!(iss.verify(&parts.join("."), &[ISSUER]), None);
}

#[test]
fn spec_defaults_and_validation() {
    let spec = parse_spec(&json!({"spec": {}}), "sa").unwrap();
    assert_eq!(spec.audiences, [ISSUER]);
    assert_eq!(spec.expiration_seconds, DEFAULT_EXPIRATION);
    assert_eq!(spec.bound, None);

    let spec = parse_spec(
        &json!({"spec": {"audiences": ["a"], "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}}),
        "sa",
    )
    .unwrap();
    assert_eq!(spec.audiences, ["a"]);
    assert_eq!(spec.expiration_seconds, 600);
    assert_eq!(
        spec.bound,
        Some(("Pod".into(), "p".into(), Some("u".into())))
    );

    let short = parse_spec(&json!({"spec": {"expirationSeconds": 599}}), "sa").unwrap_err();
    assert_eq!(short.code, 422);
    assert!(short.message.contains("10 minutes"), "{}", short.message);
    let kind = parse_spec(
        &json!({"spec": {"boundObjectRef": {"kind": "Deployment", "name": "d"}}}),
        "sa",
    )
    .unwrap_err();
    assert_eq!(kind.code, 422);
}

#[test]
fn serves_only_the_service_account_token_subresource() {
    assert!(serves(core("serviceaccounts"), "token"));
    assert!(!serves(core("serviceaccounts"), "status"));
    assert!(!serves(core("pods"), "token"));
}

#[test]
fn a_key_that_cannot_be_read_or_made_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the key's folder should be.
    let blocker = dir.path().join("data");
    std::fs::write(&blocker, "").unwrap();
    let key = blocker.join(KEY_FILE);
    let err = TokenIssuer::load_or_generate(&key).unwrap_err();
    assert!(
        matches!(&err, ServeError::Io { op: "reading", path, .. } if *path == key),
        "{err:?}"
    );
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    assert!(matches!(
        TokenIssuer::load_or_generate(&garbage),
        Err(ServeError::Key(_))
    ));
}
