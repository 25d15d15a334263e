//! TokenRequest end to end: a kube client asks the in-process API server for a
//! service-account token, and a second client presents it.

use base64::Engine;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kinet_testkit::TestApi;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

fn client_with_token(api: &TestApi, token: &str) -> kube::Client {
    let mut config = kube::Config::new(api.url.parse().unwrap());
    let body: String = api
        .ca_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    config.root_cert = Some(vec![base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()]);
    config.auth_info.token = Some(token.to_string().into());
    kube::Client::try_from(config).unwrap()
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

async fn create_sa(admin: &kube::Client, ns: &str, name: &str) -> ServiceAccount {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let sa = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap()
}

/// Binds the bootstrap `view` ClusterRole to a service account, cluster-wide.
async fn bind_view(admin: &kube::Client, ns: &str, name: &str) {
    let crbs: Api<ClusterRoleBinding> = Api::all(admin.clone());
    let binding = serde_json::from_value(json!({
        "metadata": {"name": format!("{ns}-{name}-view")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
    }))
    .unwrap();
    crbs.create(&PostParams::default(), &binding).await.unwrap();
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

#[tokio::test]
async fn issued_tokens_authenticate_as_the_service_account() {
    let api = TestApi::start().await.unwrap();
    let admin = api.client().unwrap();
    let sa = create_sa(&admin, "kube-system", "coredns").await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "kube-system");

    // Bound to a pod, as the node agent asks for it.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "kube-system");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "coredns-0"},
        "spec": {"containers": [{"name": "c", "image": "kinet/dns"}]}
    }))
    .unwrap();
    let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let issued = sas
        .create_token_request("coredns", &PostParams::default(), &req)
        .await
        .unwrap();
    let status = issued.status.expect("a token");
    let c = claims(&status.token);
    assert_eq!(c["sub"], "system:serviceaccount:kube-system:coredns");
    assert_eq!(c["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        c["aud"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert_eq!(c["kubernetes.io"]["namespace"], "kube-system");
    assert_eq!(
        c["kubernetes.io"]["serviceaccount"]["uid"],
        json!(sa.metadata.uid)
    );
    assert_eq!(c["kubernetes.io"]["pod"]["name"], "coredns-0");
    assert_eq!(c["kubernetes.io"]["pod"]["uid"], json!(pod.metadata.uid));
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
    assert_eq!(issued.spec.expiration_seconds, Some(3600));

    // The token authenticates as the service account, which may do nothing until bound.
    let as_sa = client_with_token(&api, &status.token);
    let svcs: Api<k8s_openapi::api::core::v1::Service> = Api::all(as_sa.clone());
    let err = svcs.list(&ListParams::default()).await.unwrap_err();
    assert!(
        err.to_string().contains(
            r#"services is forbidden: User "system:serviceaccount:kube-system:coredns" cannot list resource "services" in API group "" at the cluster scope"#
        ),
        "{err}"
    );
    bind_view(&admin, "kube-system", "coredns").await;
    let listed = svcs.list(&ListParams::default()).await.unwrap();
    assert!(listed
        .items
        .iter()
        .any(|s| s.metadata.name.as_deref() == Some("kubernetes")));

    // Deleting the bound pod revokes the token.
    pods.delete("coredns-0", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let mut revoked = false;
    for _ in 0..100 {
        match svcs.list(&ListParams::default()).await {
            Err(e) if is_status(&e, 401) => {
                revoked = true;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert!(
        revoked,
        "a token bound to a deleted pod still authenticates"
    );
}

#[tokio::test]
async fn unbound_tokens_default_and_die_with_the_account() {
    let api = TestApi::start().await.unwrap();
    let admin = api.client().unwrap();
    create_sa(&admin, "default", "robot").await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");

    let issued = sas
        .create_token_request("robot", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap();
    let token = issued.status.unwrap().token;
    let c = claims(&token);
    assert_eq!(
        c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
        3600
    );
    assert!(c["kubernetes.io"].get("pod").is_none());
    let as_sa = client_with_token(&api, &token);
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(as_sa.clone());
    assert!(is_status(
        &ns.list(&ListParams::default()).await.unwrap_err(),
        403
    ));
    bind_view(&admin, "default", "robot").await;
    ns.list(&ListParams::default()).await.unwrap();

    // Below the 10-minute minimum: 422.
    let short = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(60),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = sas
        .create_token_request("robot", &PostParams::default(), &short)
        .await
        .unwrap_err();
    assert!(is_status(&err, 422), "{err}");

    // No such account: 404.
    let err = sas
        .create_token_request("nobody", &PostParams::default(), &TokenRequest::default())
        .await
        .unwrap_err();
    assert!(is_status(&err, 404), "{err}");

    // A garbage JWT is refused.
    let forged = format!("{}.e30.AAAA", token.split('.').next().unwrap());
    let err = Api::<k8s_openapi::api::core::v1::Namespace>::all(client_with_token(&api, &forged))
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(is_status(&err, 401), "{err}");

    // Deleting the account revokes its tokens.
    sas.delete("robot", &DeleteParams::default()).await.unwrap();
    let err = ns.list(&ListParams::default()).await.unwrap_err();
    assert!(is_status(&err, 401), "{err}");
}
