use super::*;

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(v(groups)),
        resources: Some(v(resources)),
        verbs: v(verbs),
        ..PolicyRule::default()
    }
}

fn urls(paths: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(paths.iter().map(|x| x.to_string()).collect()),
        verbs: verbs.iter().map(|x| x.to_string()).collect(),
        ..PolicyRule::default()
    }
}

fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
    Attributes::resource(verb, group, resource, sub, "default", name)
}

#[test]
fn verbs_groups_resources_and_wildcards() {
    let r = rule(&[""], &["pods"], &["get", "list"]);
    assert!(allows(&r, &req("list", "", "pods", "", "")));
    assert!(!allows(&r, &req("delete", "", "pods", "", "x")));
    assert!(!allows(&r, &req("list", "apps", "pods", "", "")));
    assert!(
        !allows(&r, &req("get", "", "pods", "log", "x")),
        "subresources are named"
    );
    assert!(!allows(&r, &req("list", "", "secrets", "", "")));
    let all = rule(&["*"], &["*"], &["*"]);
    assert!(allows(
        &all,
        &req("deletecollection", "apps", "deployments", "scale", "")
    ));
    assert!(
        !allows(&all, &Attributes::non_resource("get", "/metrics")),
        "resources only"
    );
}

#[test]
fn subresources_and_their_wildcard() {
    let log = rule(&[""], &["pods/log"], &["get"]);
    assert!(allows(&log, &req("get", "", "pods", "log", "web")));
    assert!(!allows(&log, &req("get", "", "pods", "", "web")));
    let any_status = rule(&["apps"], &["*/status"], &["update"]);
    assert!(allows(
        &any_status,
        &req("update", "apps", "deployments", "status", "d")
    ));
    assert!(!allows(
        &any_status,
        &req("update", "apps", "deployments", "", "d")
    ));
}

#[test]
fn resource_names_limit_to_named_objects() {
    let mut r = rule(&[""], &["configmaps"], &["get", "update"]);
    r.resource_names = Some(vec!["kube-root-ca.crt".into()]);
    assert!(allows(
        &r,
        &req("get", "", "configmaps", "", "kube-root-ca.crt")
    ));
    assert!(!allows(&r, &req("get", "", "configmaps", "", "other")));
    assert!(
        !allows(&r, &req("get", "", "configmaps", "", "")),
        "a list names nothing"
    );
}

#[test]
fn non_resource_urls_exact_and_prefix() {
    let r = urls(&["/healthz", "/apis/*"], &["get"]);
    assert!(allows(&r, &Attributes::non_resource("get", "/healthz")));
    assert!(allows(
        &r,
        &Attributes::non_resource("get", "/apis/apps/v1")
    ));
    assert!(!allows(&r, &Attributes::non_resource("get", "/apis")));
    assert!(!allows(&r, &Attributes::non_resource("post", "/healthz")));
    assert!(!allows(&r, &req("get", "", "healthz", "", "")));
}

#[test]
fn covers_breaks_rules_down() {
    let owner = vec![
        rule(&["", "apps"], &["pods", "deployments"], &["get", "list"]),
        rule(&[""], &["*/status"], &["update"]),
        urls(&["/api/*"], &["get"]),
    ];
    assert!(uncovered(&owner, &[rule(&[""], &["pods"], &["list"])]).is_empty());
    assert!(uncovered(&owner, &[rule(&[""], &["pods/status"], &["update"])]).is_empty());
    assert!(uncovered(&owner, &[urls(&["/api/v1"], &["get"])]).is_empty());
    let missing = uncovered(
        &owner,
        &[rule(&[""], &["pods", "secrets"], &["get", "delete"])],
    );
    assert_eq!(missing.len(), 3, "{missing:?}");
    // A wildcard is only covered by a wildcard.
    assert_eq!(uncovered(&owner, &[rule(&[""], &["*"], &["get"])]).len(), 1);
    let admin = vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])];
    assert!(uncovered(
        &admin,
        &[rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])]
    )
    .is_empty());
}

#[test]
fn resource_names_in_covers() {
    let mut named = rule(&[""], &["secrets"], &["get"]);
    named.resource_names = Some(vec!["a".into()]);
    let mut want_a = named.clone();
    want_a.resource_names = Some(vec!["a".into()]);
    assert!(uncovered(std::slice::from_ref(&named), &[want_a]).is_empty());
    // Named grants do not cover unnamed ones.
    assert_eq!(
        uncovered(&[named], &[rule(&[""], &["secrets"], &["get"])]).len(),
        1
    );
}

#[test]
fn escalation_message_lists_what_is_missing() {
    let user = crate::UserInfo::new("bob", &["system:authenticated"]);
    let missing = uncovered(&[], &[rule(&[""], &["secrets"], &["get"])]);
    assert_eq!(
        escalation_message(&user, &missing),
        "user \"bob\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"
    );
}
