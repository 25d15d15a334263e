//! Written by hand, in the generated files' layout, from rbac/v1, authorization/v1 and
//! authentication/v1 types.go (Kubernetes v0.32): the RBAC kinds `kubectl create role|
//! clusterrole|rolebinding|clusterrolebinding` send, and the reviews `kubectl auth can-i`
//! sends (Go's encoder writes their zero status too). The selector attributes of
//! ResourceAttributes (8, 9) and the `extra` maps of SubjectAccessReviewSpec (5) and UserInfo
//! (4) are left out; a body carrying them is refused as unknown.
//! One row per Go struct field, in struct order: (proto number, JSON name, type, shape, presence).

use super::*;

pub static RBAC_POLICY_RULE: Message = Message {
    name: "PolicyRule",
    fields: &[
        f(1, "verbs", Ty::Str, List, Always),
        f(2, "apiGroups", Ty::Str, List, Omit),
        f(3, "resources", Ty::Str, List, Omit),
        f(4, "resourceNames", Ty::Str, List, Omit),
        f(5, "nonResourceURLs", Ty::Str, List, Omit),
    ],
};

pub static RBAC_SUBJECT: Message = Message {
    name: "Subject",
    fields: &[
        f(1, "kind", Ty::Str, One, Always),
        f(2, "apiGroup", Ty::Str, One, Omit),
        f(3, "name", Ty::Str, One, Always),
        f(4, "namespace", Ty::Str, One, Omit),
    ],
};

pub static RBAC_ROLE_REF: Message = Message {
    name: "RoleRef",
    fields: &[
        f(1, "apiGroup", Ty::Str, One, Always),
        f(2, "kind", Ty::Str, One, Always),
        f(3, "name", Ty::Str, One, Always),
    ],
};

pub static RBAC_AGGREGATION_RULE: Message = Message {
    name: "AggregationRule",
    fields: &[
        f(1, "clusterRoleSelectors", Ty::Msg(&META_LABEL_SELECTOR), List, Omit),
    ],
};

pub static RBAC_ROLE: Message = Message {
    name: "Role",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "rules", Ty::Msg(&RBAC_POLICY_RULE), List, Always),
    ],
};

pub static RBAC_CLUSTER_ROLE: Message = Message {
    name: "ClusterRole",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "rules", Ty::Msg(&RBAC_POLICY_RULE), List, Always),
        f(3, "aggregationRule", Ty::Msg(&RBAC_AGGREGATION_RULE), One, Ptr),
    ],
};

/// RoleBinding and ClusterRoleBinding have the same fields.
pub static RBAC_ROLE_BINDING: Message = Message {
    name: "RoleBinding",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "subjects", Ty::Msg(&RBAC_SUBJECT), List, Omit),
        f(3, "roleRef", Ty::Msg(&RBAC_ROLE_REF), One, Always),
    ],
};

pub static AUTHZ_RESOURCE_ATTRIBUTES: Message = Message {
    name: "ResourceAttributes",
    fields: &[
        f(1, "namespace", Ty::Str, One, Omit),
        f(2, "verb", Ty::Str, One, Omit),
        f(3, "group", Ty::Str, One, Omit),
        f(4, "version", Ty::Str, One, Omit),
        f(5, "resource", Ty::Str, One, Omit),
        f(6, "subresource", Ty::Str, One, Omit),
        f(7, "name", Ty::Str, One, Omit),
    ],
};

pub static AUTHZ_NON_RESOURCE_ATTRIBUTES: Message = Message {
    name: "NonResourceAttributes",
    fields: &[
        f(1, "path", Ty::Str, One, Omit),
        f(2, "verb", Ty::Str, One, Omit),
    ],
};

pub static AUTHZ_SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectAccessReviewSpec",
    fields: &[
        f(1, "resourceAttributes", Ty::Msg(&AUTHZ_RESOURCE_ATTRIBUTES), One, Ptr),
        f(2, "nonResourceAttributes", Ty::Msg(&AUTHZ_NON_RESOURCE_ATTRIBUTES), One, Ptr),
    ],
};

pub static AUTHZ_SUBJECT_ACCESS_REVIEW_STATUS: Message = Message {
    name: "SubjectAccessReviewStatus",
    fields: &[
        f(1, "allowed", Ty::Bool, One, Always),
        f(4, "denied", Ty::Bool, One, Omit),
        f(2, "reason", Ty::Str, One, Omit),
        f(3, "evaluationError", Ty::Str, One, Omit),
    ],
};

pub static AUTHZ_SELF_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SelfSubjectAccessReview",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&AUTHZ_SELF_SUBJECT_ACCESS_REVIEW_SPEC), One, Always),
        f(3, "status", Ty::Msg(&AUTHZ_SUBJECT_ACCESS_REVIEW_STATUS), One, Omit),
    ],
};

pub static AUTHZ_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message {
    name: "SubjectAccessReviewSpec",
    fields: &[
        f(1, "resourceAttributes", Ty::Msg(&AUTHZ_RESOURCE_ATTRIBUTES), One, Ptr),
        f(2, "nonResourceAttributes", Ty::Msg(&AUTHZ_NON_RESOURCE_ATTRIBUTES), One, Ptr),
        f(3, "user", Ty::Str, One, Omit),
        f(4, "groups", Ty::Str, List, Omit),
        f(6, "uid", Ty::Str, One, Omit),
    ],
};

/// SubjectAccessReview and LocalSubjectAccessReview have the same fields.
pub static AUTHZ_SUBJECT_ACCESS_REVIEW: Message = Message {
    name: "SubjectAccessReview",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&AUTHZ_SUBJECT_ACCESS_REVIEW_SPEC), One, Always),
        f(3, "status", Ty::Msg(&AUTHZ_SUBJECT_ACCESS_REVIEW_STATUS), One, Omit),
    ],
};

pub static AUTHZ_SELF_SUBJECT_RULES_REVIEW_SPEC: Message = Message {
    name: "SelfSubjectRulesReviewSpec",
    fields: &[
        f(1, "namespace", Ty::Str, One, Omit),
    ],
};

pub static AUTHZ_RESOURCE_RULE: Message = Message {
    name: "ResourceRule",
    fields: &[
        f(1, "verbs", Ty::Str, List, Always),
        f(2, "apiGroups", Ty::Str, List, Omit),
        f(3, "resources", Ty::Str, List, Omit),
        f(4, "resourceNames", Ty::Str, List, Omit),
    ],
};

pub static AUTHZ_NON_RESOURCE_RULE: Message = Message {
    name: "NonResourceRule",
    fields: &[
        f(1, "verbs", Ty::Str, List, Always),
        f(2, "nonResourceURLs", Ty::Str, List, Omit),
    ],
};

pub static AUTHZ_SUBJECT_RULES_REVIEW_STATUS: Message = Message {
    name: "SubjectRulesReviewStatus",
    fields: &[
        f(1, "resourceRules", Ty::Msg(&AUTHZ_RESOURCE_RULE), List, Always),
        f(2, "nonResourceRules", Ty::Msg(&AUTHZ_NON_RESOURCE_RULE), List, Always),
        f(3, "incomplete", Ty::Bool, One, Always),
        f(4, "evaluationError", Ty::Str, One, Omit),
    ],
};

pub static AUTHZ_SELF_SUBJECT_RULES_REVIEW: Message = Message {
    name: "SelfSubjectRulesReview",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&AUTHZ_SELF_SUBJECT_RULES_REVIEW_SPEC), One, Always),
        f(3, "status", Ty::Msg(&AUTHZ_SUBJECT_RULES_REVIEW_STATUS), One, Omit),
    ],
};

pub static AUTHN_TOKEN_REVIEW_SPEC: Message = Message {
    name: "TokenReviewSpec",
    fields: &[
        f(1, "token", Ty::Str, One, Omit),
        f(2, "audiences", Ty::Str, List, Omit),
    ],
};

pub static AUTHN_USER_INFO: Message = Message {
    name: "UserInfo",
    fields: &[
        f(1, "username", Ty::Str, One, Omit),
        f(2, "uid", Ty::Str, One, Omit),
        f(3, "groups", Ty::Str, List, Omit),
    ],
};

pub static AUTHN_TOKEN_REVIEW_STATUS: Message = Message {
    name: "TokenReviewStatus",
    fields: &[
        f(1, "authenticated", Ty::Bool, One, Omit),
        f(2, "user", Ty::Msg(&AUTHN_USER_INFO), One, Omit),
        f(4, "audiences", Ty::Str, List, Omit),
        f(3, "error", Ty::Str, One, Omit),
    ],
};

pub static AUTHN_TOKEN_REVIEW: Message = Message {
    name: "TokenReview",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&AUTHN_TOKEN_REVIEW_SPEC), One, Always),
        f(3, "status", Ty::Msg(&AUTHN_TOKEN_REVIEW_STATUS), One, Omit),
    ],
};
