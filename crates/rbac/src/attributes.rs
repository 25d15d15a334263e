//! The request an authorizer decides on, as kube-apiserver's `authorizer.AttributesRecord`.

/// An authenticated user: name and groups (kube-apiserver's `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// `(namespace, name)` of a service account's user name
    /// (`system:serviceaccount:<ns>:<name>`).
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'))
    }
}

/// What is asked: a verb on a resource (with its namespace, group, subresource and name) or on
/// a non-resource path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub verb: String,
    /// False for non-resource paths such as `/healthz` or `/apis`.
    pub resource_request: bool,
    pub namespace: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// The URL path (used by non-resource requests).
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(
        verb: &str,
        api_group: &str,
        resource: &str,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource_request: true,
            namespace: namespace.into(),
            api_group: api_group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
            path: String::new(),
        }
    }

    /// A non-resource request.
    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            path: path.into(),
            ..Attributes::default()
        }
    }

    /// `pods` or `pods/log`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// kube-apiserver's `forbiddenMessage`: the sentence after `... is forbidden: `.
    pub fn forbidden_message(&self, user: &str) -> String {
        if !self.resource_request {
            return format!("User {user:?} cannot {} path {:?}", self.verb, self.path);
        }
        let what = format!(
            "User {user:?} cannot {} resource {:?} in API group {:?}",
            self.verb,
            self.combined_resource(),
            self.api_group
        );
        if self.namespace.is_empty() {
            format!("{what} at the cluster scope")
        } else {
            format!("{what} in the namespace {:?}", self.namespace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kube_apiservers() {
        let a = Attributes::resource("list", "", "pods", "", "default", "");
        assert_eq!(
            a.forbidden_message("system:serviceaccount:default:x"),
            r#"User "system:serviceaccount:default:x" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let a = Attributes::resource("get", "", "nodes", "status", "", "n1");
        assert_eq!(
            a.forbidden_message("bob"),
            r#"User "bob" cannot get resource "nodes/status" in API group "" at the cluster scope"#
        );
        let a = Attributes::non_resource("get", "/metrics");
        assert_eq!(
            a.forbidden_message("bob"),
            r#"User "bob" cannot get path "/metrics""#
        );
    }

    #[test]
    fn service_account_names() {
        let sa = UserInfo::new("system:serviceaccount:kube-system:coredns", &[]);
        assert_eq!(sa.service_account(), Some(("kube-system", "coredns")));
        assert_eq!(UserInfo::new("alice", &[]).service_account(), None);
        assert_eq!(
            UserInfo::new("system:serviceaccount:a:b:c", &[]).service_account(),
            None
        );
    }
}
