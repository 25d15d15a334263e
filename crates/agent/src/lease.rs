//! The node's Lease in `kube-node-lease`: the cheap heartbeat the node lifecycle controller
//! reads, renewed every 10 s (the kubelet renews at a quarter of the 40 s duration).

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

/// Where node leases live.
pub const NAMESPACE: &str = "kube-node-lease";
/// How long a lease stays valid without renewal (the kubelet's default).
pub const DURATION_SECS: i32 = 40;

/// The Lease for node `name` renewed at `now`, owned by the Node (uid `node_uid`) so the
/// garbage collector removes it with the Node.
pub fn lease(name: &str, node_uid: Option<&str>, now: Timestamp) -> Lease {
    let owner = node_uid.map(|uid| OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.to_string(),
        uid: uid.to_string(),
        ..OwnerReference::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(DURATION_SECS),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Whether `lease` was renewed within its duration before `now`.
pub fn is_fresh(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let (Some(MicroTime(renewed)), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds)
    else {
        return false;
    };
    now.as_second() - renewed.as_second() <= i64::from(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn lease_is_held_by_and_owned_by_the_node() {
        let l = lease("w1", Some("uid-1"), ts(100));
        assert_eq!(l.metadata.namespace.as_deref(), Some("kube-node-lease"));
        assert_eq!(l.metadata.name.as_deref(), Some("w1"));
        let owner = &l.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        let spec = l.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("w1"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert!(lease("w1", None, ts(1)).metadata.owner_references.is_none());
    }

    #[test]
    fn freshness_follows_the_duration() {
        let l = lease("w1", None, ts(100));
        assert!(is_fresh(&l, ts(100)));
        assert!(is_fresh(&l, ts(140)));
        assert!(!is_fresh(&l, ts(141)));
        assert!(!is_fresh(&Lease::default(), ts(100)));
    }
}
