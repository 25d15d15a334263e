//! The review APIs: SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview,
//! SelfSubjectRulesReview (`kubectl auth can-i --list`) and TokenReview. They are created and
//! answered, never stored.

use http::Request;
use hyper::body::Incoming;
use kinet_rbac::{Attributes, UserInfo};
use kinet_types::ApiError;
use serde_json::{json, Value};

use crate::http::{error_reply, json_reply, read_body, Reply};
use crate::rest::{parse_object, Api};

/// One of the review resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    SelfSubjectAccess,
    SubjectAccess,
    SelfSubjectRules,
    Token,
}

/// The review a path names.
pub fn route(path: &str) -> Option<Review> {
    Some(match path.trim_end_matches('/') {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Review::SelfSubjectAccess,
        "/apis/authorization.k8s.io/v1/subjectaccessreviews" => Review::SubjectAccess,
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews" => Review::SelfSubjectRules,
        "/apis/authentication.k8s.io/v1/tokenreviews" => Review::Token,
        _ => return None,
    })
}

impl Review {
    fn group_plural_kind(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Review::SelfSubjectAccess => (
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
            ),
            Review::SubjectAccess => (
                "authorization.k8s.io",
                "subjectaccessreviews",
                "SubjectAccessReview",
            ),
            Review::SelfSubjectRules => (
                "authorization.k8s.io",
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
            ),
            Review::Token => ("authentication.k8s.io", "tokenreviews", "TokenReview"),
        }
    }

    /// Creating a review is `create` on its resource.
    pub fn attributes(self) -> Attributes {
        let (group, plural, _) = self.group_plural_kind();
        Attributes::resource("create", group, plural, "", "", "")
    }

    pub async fn serve(self, api: &Api, user: &UserInfo, req: Request<Incoming>) -> Reply {
        if req.method() != http::Method::POST {
            return error_reply(&ApiError::method_not_allowed(
                req.method().as_str(),
                "review",
            ));
        }
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(e) => return error_reply(&e),
        };
        // kubectl's typed client sends reviews as protobuf.
        let mut review = match parse_object(&content_type, &body) {
            Ok((v, _)) => v,
            Err(e) => return error_reply(&e),
        };
        let spec = review["spec"].clone();
        let status = match self {
            Review::SelfSubjectAccess => access(api, user, &spec),
            Review::SubjectAccess => {
                let strings = |v: &Value| -> Vec<String> {
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                };
                let subject = UserInfo {
                    name: spec["user"].as_str().unwrap_or_default().to_string(),
                    groups: strings(&spec["groups"]),
                };
                access(api, &subject, &spec)
            }
            Review::SelfSubjectRules => {
                let ns = spec["namespace"].as_str().unwrap_or_default();
                rules(api.authz.rules_for(&api.store, user, ns))
            }
            Review::Token => token(api, spec["token"].as_str().unwrap_or_default()).await,
        };
        let (group, _, kind) = self.group_plural_kind();
        review["apiVersion"] = json!(format!("{group}/v1"));
        review["kind"] = json!(kind);
        review["metadata"] = json!({"creationTimestamp": null});
        review["status"] = status;
        json_reply(201, &review)
    }
}

/// `status` of an access review: `allowed`, and the reason when allowed.
fn access(api: &Api, user: &UserInfo, spec: &Value) -> Value {
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let a = match (&spec["resourceAttributes"], &spec["nonResourceAttributes"]) {
        (r, _) if r.is_object() => Attributes::resource(
            &text(r, "verb"),
            &text(r, "group"),
            &text(r, "resource"),
            &text(r, "subresource"),
            &text(r, "namespace"),
            &text(r, "name"),
        ),
        (_, n) => Attributes::non_resource(&text(n, "verb"), &text(n, "path")),
    };
    match api.authz.authorize(&api.store, user, &a) {
        kinet_rbac::Decision::Allow(reason) if reason.is_empty() => json!({"allowed": true}),
        kinet_rbac::Decision::Allow(reason) => json!({"allowed": true, "reason": reason}),
        kinet_rbac::Decision::NoOpinion => json!({"allowed": false}),
    }
}

/// `status` of a rules review: the rules split into resource and non-resource ones.
fn rules(all: Vec<k8s_openapi::api::rbac::v1::PolicyRule>) -> Value {
    let (urls, resources): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|r| r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()));
    let resource_rules: Vec<Value> = resources
        .iter()
        .map(|r| json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources, "resourceNames": r.resource_names}))
        .collect();
    let non_resource_rules: Vec<Value> = urls
        .iter()
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

/// `status` of a TokenReview: the service account a token this server signed belongs to.
async fn token(api: &Api, token: &str) -> Value {
    match api.service_account_user(token).await {
        Some(user) => {
            let info = user.info();
            json!({"authenticated": true, "user": {"username": info.name, "groups": info.groups},
                "audiences": [crate::tokenrequest::ISSUER]})
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    }
}
