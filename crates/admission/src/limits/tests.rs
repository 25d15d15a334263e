use serde_json::json;

use super::*;
use crate::defaults::default;

fn range(limits: Value) -> Value {
    let mut r = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"},
        "spec": {"limits": limits}});
    let resource = kinet_types::registry::lookup("", "v1", "limitranges").unwrap();
    default(resource, &mut r);
    r
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
}

#[test]
fn a_range_defaults_limits_from_max_and_requests_from_limits_then_min() {
    let r = range(json!([{"type": "Container",
        "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "50m"}, "default": {"memory": "512Mi"}}]));
    let item = &r["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "1", "memory": "512Mi"}));
    assert_eq!(
        item["defaultRequest"],
        json!({"cpu": "1", "memory": "512Mi"})
    );
    let r = range(json!([{"type": "Container", "min": {"cpu": "50m"}}]));
    assert_eq!(
        r["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "50m"})
    );
    assert!(r["spec"]["limits"][0].get("default").is_none());
}

#[test]
fn containers_get_the_defaults_they_lack_and_the_annotation_says_which() {
    let r = range(json!([{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
    let mut p = pod(json!([
        {"name": "web", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}},
        {"name": "side"}]));
    default_pod(&mut p, &[&r]);
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "2", "memory": "256Mi"}, "requests": {"cpu": "2", "memory": "128Mi"}})
    );
    assert_eq!(
        p["spec"]["containers"][1]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: memory request for container web; memory limit for container web; \
         cpu, memory request for container side; cpu, memory limit for container side"
    );
    // A range without defaults leaves the pod as it was.
    let mut bare = pod(json!([{"name": "c"}]));
    default_pod(
        &mut bare,
        &[&range(json!([{"type": "Pod", "max": {"cpu": "1"}}]))],
    );
    assert_eq!(bare, pod(json!([{"name": "c"}])));
}

#[test]
fn bounds_are_checked_with_kube_apiservers_messages() {
    let r = range(json!([
        {"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "2"}},
        {"type": "Pod", "max": {"cpu": "1"}}]));
    let ok = pod(
        json!([{"name": "a", "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "400m", "memory": "1Gi"}}}]),
    );
    assert_eq!(check_pod(&ok, &r), None);
    let small = pod(
        json!([{"name": "a", "resources": {"requests": {"cpu": "50m"}, "limits": {"cpu": "50m", "memory": "1Gi"}}}]),
    );
    assert_eq!(
        check_pod(&small, &r).unwrap(),
        "minimum cpu usage per Container is 100m, but request is 50m"
    );
    let big = pod(
        json!([{"name": "a", "resources": {"requests": {"cpu": "200m", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}]),
    );
    assert_eq!(
        check_pod(&big, &r).unwrap(),
        "[maximum memory usage per Container is 1Gi, but limit is 2Gi, \
         cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000]"
    );
    let unlimited = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "200m"}}}]));
    assert_eq!(
        check_pod(&unlimited, &r).unwrap(),
        "[maximum memory usage per Container is 1Gi.  No limit is specified, \
         cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0, \
         maximum cpu usage per Pod is 1.  No limit is specified]"
    );
    let two = pod(json!([
        {"name": "a", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m", "memory": "1Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m", "memory": "1Gi"}}}]));
    assert_eq!(
        check_pod(&two, &r).unwrap(),
        "maximum cpu usage per Pod is 1, but limit is 1200m"
    );
}

#[test]
fn claims_are_bounded_by_their_storage_request() {
    let r = range(
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]),
    );
    let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    assert_eq!(check_claim(&claim("1Gi"), &r), None);
    assert_eq!(
        check_claim(&claim("5Gi"), &r).unwrap(),
        "maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
    );
    assert_eq!(
        check_claim(&claim("500Mi"), &r).unwrap(),
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
    );
}
