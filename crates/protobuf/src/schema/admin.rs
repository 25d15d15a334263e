//! Written by hand, in the generated files' row format, from core/v1, policy/v1 and
//! scheduling/v1 types.go and generated.proto (Kubernetes v0.32.9): the kinds that
//! `kubectl create quota|pdb|priorityclass` send as protobuf, and the Eviction `kubectl drain`
//! posts (with meta/v1 DeleteOptions).
use super::*;

pub static CORE_RESOURCE_QUOTA: Message = Message {
    name: "ResourceQuota",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&CORE_RESOURCE_QUOTA_SPEC), One, Omit),
        f(3, "status", Ty::Msg(&CORE_RESOURCE_QUOTA_STATUS), One, Omit),
    ],
};

pub static CORE_RESOURCE_QUOTA_SPEC: Message = Message {
    name: "ResourceQuotaSpec",
    fields: &[
        f(1, "hard", Ty::Quantity, Map, Omit),
        f(2, "scopes", Ty::Str, List, Omit),
        f(3, "scopeSelector", Ty::Msg(&CORE_SCOPE_SELECTOR), One, Ptr),
    ],
};

pub static CORE_RESOURCE_QUOTA_STATUS: Message = Message {
    name: "ResourceQuotaStatus",
    fields: &[
        f(1, "hard", Ty::Quantity, Map, Omit),
        f(2, "used", Ty::Quantity, Map, Omit),
    ],
};

pub static CORE_SCOPE_SELECTOR: Message = Message {
    name: "ScopeSelector",
    fields: &[
        f(1, "matchExpressions", Ty::Msg(&CORE_SCOPED_RESOURCE_SELECTOR_REQUIREMENT), List, Omit),
    ],
};

pub static CORE_SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message {
    name: "ScopedResourceSelectorRequirement",
    fields: &[
        f(1, "scopeName", Ty::Str, One, Always),
        f(2, "operator", Ty::Str, One, Always),
        f(3, "values", Ty::Str, List, Omit),
    ],
};

pub static POLICY_POD_DISRUPTION_BUDGET: Message = Message {
    name: "PodDisruptionBudget",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "spec", Ty::Msg(&POLICY_POD_DISRUPTION_BUDGET_SPEC), One, Omit),
        f(3, "status", Ty::Msg(&POLICY_POD_DISRUPTION_BUDGET_STATUS), One, Omit),
    ],
};

pub static POLICY_POD_DISRUPTION_BUDGET_SPEC: Message = Message {
    name: "PodDisruptionBudgetSpec",
    fields: &[
        f(1, "minAvailable", Ty::IntOrString, One, Ptr),
        f(2, "selector", Ty::Msg(&META_LABEL_SELECTOR), One, Ptr),
        f(3, "maxUnavailable", Ty::IntOrString, One, Ptr),
        f(4, "unhealthyPodEvictionPolicy", Ty::Str, One, Ptr),
    ],
};

pub static POLICY_POD_DISRUPTION_BUDGET_STATUS: Message = Message {
    name: "PodDisruptionBudgetStatus",
    fields: &[
        f(1, "observedGeneration", Ty::I64, One, Omit),
        f(2, "disruptedPods", Ty::Time, Map, Omit),
        f(3, "disruptionsAllowed", Ty::I32, One, Always),
        f(4, "currentHealthy", Ty::I32, One, Always),
        f(5, "desiredHealthy", Ty::I32, One, Always),
        f(6, "expectedPods", Ty::I32, One, Always),
        f(7, "conditions", Ty::Msg(&META_CONDITION), List, Omit),
    ],
};

pub static POLICY_EVICTION: Message = Message {
    name: "Eviction",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "deleteOptions", Ty::Msg(&META_DELETE_OPTIONS), One, Ptr),
    ],
};

pub static META_DELETE_OPTIONS: Message = Message {
    name: "DeleteOptions",
    fields: &[
        f(1, "gracePeriodSeconds", Ty::I64, One, Ptr),
        f(2, "preconditions", Ty::Msg(&META_PRECONDITIONS), One, Ptr),
        f(3, "orphanDependents", Ty::Bool, One, Ptr),
        f(4, "propagationPolicy", Ty::Str, One, Ptr),
        f(5, "dryRun", Ty::Str, List, Omit),
        f(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Ty::Bool, One, Ptr),
    ],
};

pub static META_PRECONDITIONS: Message = Message {
    name: "Preconditions",
    fields: &[
        f(1, "uid", Ty::Str, One, Ptr),
        f(2, "resourceVersion", Ty::Str, One, Ptr),
    ],
};

pub static SCHED_PRIORITY_CLASS: Message = Message {
    name: "PriorityClass",
    fields: &[
        f(1, "metadata", Ty::Msg(&META_OBJECT_META), One, Omit),
        f(2, "value", Ty::I32, One, Always),
        f(3, "globalDefault", Ty::Bool, One, Omit),
        f(4, "description", Ty::Str, One, Omit),
        f(5, "preemptionPolicy", Ty::Str, One, Ptr),
    ],
};
