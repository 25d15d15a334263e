//! Impersonation (`kubectl --as`, `--as-group`): the `Impersonate-User` and
//! `Impersonate-Group` headers replace the requester's identity when the requester may
//! `impersonate` those users (or service accounts) and groups, as kube-apiserver's
//! impersonation filter checks.

use http::HeaderMap;
use kinet_rbac::{Attributes, UserInfo, AUTHENTICATED};
use kinet_types::ApiError;

use crate::authz::forbidden;
use crate::rest::Api;

/// The identity the request acts as.
pub fn apply(api: &Api, requester: UserInfo, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let users = values("impersonate-user");
    let groups = values("impersonate-group");
    let Some(name) = users.first() else {
        if groups.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::bad_request(
            "requested [Impersonate-Group] without impersonating a user",
        ));
    };
    let mut checks = Vec::new();
    let mut target = UserInfo {
        name: name.clone(),
        groups: Vec::new(),
    };
    match target
        .service_account()
        .map(|(ns, n)| (ns.to_string(), n.to_string()))
    {
        Some((ns, sa)) => {
            checks.push(Attributes::resource(
                "impersonate",
                "",
                "serviceaccounts",
                "",
                &ns,
                &sa,
            ));
            target.groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
        None => checks.push(Attributes::resource(
            "impersonate",
            "",
            "users",
            "",
            "",
            name,
        )),
    }
    for g in &groups {
        checks.push(Attributes::resource("impersonate", "", "groups", "", "", g));
        if !target.groups.contains(g) {
            target.groups.push(g.clone());
        }
    }
    for a in &checks {
        if !api.authz.authorize(&api.store, &requester, a).allowed() {
            return Err(forbidden(&requester, a));
        }
    }
    if target.name != "system:anonymous" && !target.groups.iter().any(|g| g == AUTHENTICATED) {
        target.groups.push(AUTHENTICATED.into());
    }
    Ok(target)
}
