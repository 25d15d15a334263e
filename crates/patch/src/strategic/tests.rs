use serde_json::{json, Value};

use super::*;

fn smp(kind: &str, current: Value, patch: Value) -> Result<Value, SmpError> {
    let (Value::Object(c), Value::Object(p)) = (current, patch) else {
        panic!("objects only")
    };
    merge_value_maps(c, p, schema::for_kind(kind)).map(Value::Object)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "old"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 80, "protocol": "TCP"},
                                   {"containerPort": 443, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                        {"name": "sidecar", "image": "busybox"}
                    ],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "restartPolicy": "Always"
                }
            }
        }
    })
}

/// Each case: a description, the kind, the patch, and the edits that turn the fixture into the
/// expected object (JSON pointer -> new value, `Value::Null` meaning removed).
#[test]
fn deployment_patches_as_kubectl_sends_them() {
    type Case = (&'static str, Value, Vec<(&'static str, Value)>);
    let cases: Vec<Case> = vec![
        (
            "kubectl apply: replicas and image changed",
            json!({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"new"}},
                   "spec":{"replicas":3,"template":{"spec":{
                       "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
                       "containers":[{"image":"nginx:1.27","name":"web"}]}}}}),
            vec![
                (
                    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                    json!("new"),
                ),
                ("/spec/replicas", json!(3)),
                (
                    "/spec/template/spec/containers/0/image",
                    json!("nginx:1.27"),
                ),
            ],
        ),
        (
            "kubectl set image",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}),
            vec![(
                "/spec/template/spec/containers/1/image",
                json!("busybox:1.36"),
            )],
        ),
        (
            "kubectl apply: a container port removed",
            json!({"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
                "containers":[{"$setElementOrder/ports":[{"containerPort":80}],"name":"web",
                               "ports":[{"$patch":"delete","containerPort":443}]}]}}}}),
            vec![("/spec/template/spec/containers/0/ports/1", Value::Null)],
        ),
        (
            "label deleted with null",
            json!({"metadata":{"labels":{"app":null}}}),
            vec![("/metadata/labels/app", Value::Null)],
        ),
        (
            "$patch: delete of an env var",
            json!({"spec":{"template":{"spec":{"containers":[
                {"name":"web","env":[{"$patch":"delete","name":"A"}]}]}}}}),
            vec![("/spec/template/spec/containers/0/env/0", Value::Null)],
        ),
        (
            "$retainKeys: RollingUpdate to Recreate drops rollingUpdate",
            json!({"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}}),
            vec![("/spec/strategy", json!({"type": "Recreate"}))],
        ),
        (
            "$retainKeys without a null still clears unlisted keys",
            json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
            vec![("/spec/strategy", json!({"type": "Recreate"}))],
        ),
        (
            "tolerations carry no patch strategy and are replaced",
            json!({"spec":{"template":{"spec":{"tolerations":[{"key":"b","operator":"Exists"}]}}}}),
            vec![(
                "/spec/template/spec/tolerations",
                json!([{"key":"b","operator":"Exists"}]),
            )],
        ),
        (
            "$patch: replace on a map",
            json!({"spec":{"selector":{"$patch":"replace","matchLabels":{"run":"x"}}}}),
            vec![("/spec/selector", json!({"matchLabels": {"run": "x"}}))],
        ),
        (
            "$patch: replace on a list",
            json!({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"i"}]}}}}),
            vec![(
                "/spec/template/spec/containers",
                json!([{"name":"only","image":"i"}]),
            )],
        ),
        (
            "$setElementOrder alone reorders",
            json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"sidecar"},{"name":"web"}]}}}}),
            vec![("/spec/template/spec/containers", {
                let c = deployment()["spec"]["template"]["spec"]["containers"].clone();
                json!([c[1], c[0]])
            })],
        ),
        (
            "kubectl apply: a container added between the others",
            json!({"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"web"},{"name":"log"},{"name":"sidecar"}],
                "containers":[{"name":"log","image":"fluentd","resources":null}]}}}}),
            vec![("/spec/template/spec/containers", {
                let c = deployment()["spec"]["template"]["spec"]["containers"].clone();
                json!([c[0], {"name":"log","image":"fluentd"}, c[1]])
            })],
        ),
        (
            "kubectl apply: a field of a container removed",
            json!({"spec":{"template":{"spec":{
                "$setElementOrder/containers":[{"name":"web"},{"name":"sidecar"}],
                "containers":[{"imagePullPolicy":null,"name":"web"}]}}}}),
            vec![(
                "/spec/template/spec/containers/0/imagePullPolicy",
                Value::Null,
            )],
        ),
        (
            "kubectl rollout restart",
            json!({"spec":{"template":{"metadata":{"annotations":{
                "kubectl.kubernetes.io/restartedAt":"2025-01-01T00:00:00Z"}}}}}),
            vec![(
                "/spec/template/metadata/annotations",
                json!({"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}),
            )],
        ),
        (
            "env var value changed by merge key",
            json!({"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"3"}]}]}}}}),
            vec![("/spec/template/spec/containers/0/env/1/value", json!("3"))],
        ),
        (
            "a nested map directive-free value is added as is, nulls dropped",
            json!({"spec":{"template":{"metadata":{"annotations":{"a":"1","b":null}}}}}),
            vec![("/spec/template/metadata/annotations", json!({"a": "1"}))],
        ),
    ];
    for (name, patch, edits) in cases {
        let mut want = deployment();
        for (pointer, value) in edits {
            set(&mut want, pointer, value);
        }
        let got =
            smp("Deployment", deployment(), patch).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got, want, "{name}");
    }
}

/// Sets or (for null) removes the value at a JSON pointer.
fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match (parent, value) {
        (Value::Object(m), Value::Null) => {
            m.shift_remove(&last);
        }
        (Value::Object(m), v) => {
            m.insert(last, v);
        }
        (Value::Array(a), Value::Null) => {
            a.remove(last.parse::<usize>().unwrap());
        }
        (Value::Array(a), v) => a[last.parse::<usize>().unwrap()] = v,
        _ => panic!("bad pointer {pointer}"),
    }
}

#[test]
fn other_kinds_and_lists() {
    let cases: Vec<(&str, &str, Value, Value, Value)> = vec![
        (
            "finalizers merge as a set, patch order first",
            "ConfigMap",
            json!({"metadata":{"finalizers":["a","b"]}}),
            json!({"metadata":{"finalizers":["c","a"]}}),
            json!({"metadata":{"finalizers":["c","a","b"]}}),
        ),
        (
            "$deleteFromPrimitiveList",
            "Pod",
            json!({"metadata":{"finalizers":["a","b","c"]}}),
            json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}),
            json!({"metadata":{"finalizers":["a","c"]}}),
        ),
        (
            "kubectl apply on finalizers: delete, add and order",
            "Pod",
            json!({"metadata":{"finalizers":["a","b"]}}),
            json!({"metadata":{"$setElementOrder/finalizers":["a","c"],"$deleteFromPrimitiveList/finalizers":["b"],"finalizers":["c"]}}),
            json!({"metadata":{"finalizers":["a","c"]}}),
        ),
        (
            "Service ports merge by port; new items come first without an order list",
            "Service",
            json!({"spec":{"ports":[{"port":80,"targetPort":8080,"protocol":"TCP"}]}}),
            json!({"spec":{"ports":[{"port":443,"targetPort":8443}]}}),
            json!({"spec":{"ports":[{"port":443,"targetPort":8443},{"port":80,"targetPort":8080,"protocol":"TCP"}]}}),
        ),
        (
            "node taints are replaced (no patch strategy in core/v1)",
            "Node",
            json!({"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]}}),
            json!({"spec":{"taints":[{"key":"b","effect":"NoSchedule"}]}}),
            json!({"spec":{"taints":[{"key":"b","effect":"NoSchedule"}]}}),
        ),
        (
            "node status conditions merge by type",
            "Node",
            json!({"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"PIDPressure","status":"False"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"}]}}),
            json!({"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"PIDPressure","status":"False"}]}}),
        ),
        (
            "ownerReferences merge by uid",
            "ReplicaSet",
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a"}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"1","controller":true}]}}),
            json!({"metadata":{"ownerReferences":[{"uid":"1","name":"a","controller":true}]}}),
        ),
        (
            "unknown kinds: maps merge, lists replace",
            "Endpoints",
            json!({"subsets":[{"addresses":[{"ip":"1.1.1.1"}]}],"metadata":{"labels":{"a":"1"}}}),
            json!({"subsets":[{"addresses":[{"ip":"2.2.2.2"}]}],"metadata":{"labels":{"b":"2"}}}),
            json!({"subsets":[{"addresses":[{"ip":"2.2.2.2"}]}],"metadata":{"labels":{"a":"1","b":"2"}}}),
        ),
        (
            "a map replaced by a scalar and a scalar by a map",
            "ConfigMap",
            json!({"data":{"a":"1"},"x":"s"}),
            json!({"data":"flat","x":{"k":"v","n":null}}),
            json!({"data":"flat","x":{"k":"v"}}),
        ),
        (
            "$patch: delete on a map empties it",
            "Pod",
            json!({"spec":{"securityContext":{"runAsUser":1}}}),
            json!({"spec":{"securityContext":{"$patch":"delete"}}}),
            json!({"spec":{"securityContext":{}}}),
        ),
        (
            "a pod volume added with its source",
            "Pod",
            json!({"spec":{"volumes":[{"name":"a","emptyDir":{}}]}}),
            json!({"spec":{"$setElementOrder/volumes":[{"name":"a"},{"name":"b"}],"volumes":[{"name":"b","configMap":{"name":"cm"}}]}}),
            json!({"spec":{"volumes":[{"name":"a","emptyDir":{}},{"name":"b","configMap":{"name":"cm"}}]}}),
        ),
        (
            "volume source switched with $retainKeys",
            "Pod",
            json!({"spec":{"volumes":[{"name":"a","emptyDir":{}}]}}),
            json!({"spec":{"volumes":[{"$retainKeys":["hostPath","name"],"name":"a","hostPath":{"path":"/x"}}]}}),
            json!({"spec":{"volumes":[{"name":"a","hostPath":{"path":"/x"}}]}}),
        ),
    ];
    for (name, kind, current, patch, want) in cases {
        let got = smp(kind, current, patch).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn malformed_directives() {
    let pod = json!({"metadata":{"labels":{"a":"1"}},"spec":{"containers":[{"name":"c"}]}});
    let cases: Vec<(&str, Value, SmpError)> = vec![
        (
            "unknown $patch on a map",
            json!({"metadata":{"$patch":"bogus"}}),
            SmpError::Other("unknown patch type: bogus in map: map[$patch:bogus]".into()),
        ),
        (
            "$retainKeys not a list",
            json!({"spec":{"$retainKeys":"containers"}}),
            SmpError::BadRequest(error::BAD_RETAIN_KEYS),
        ),
        (
            "patch sets a key outside $retainKeys",
            json!({"spec":{"$retainKeys":["containers"],"hostname":"h"}}),
            SmpError::BadRequest(error::BAD_RETAIN_KEYS),
        ),
        (
            "malformed $deleteFromPrimitiveList key",
            json!({"metadata":{"$deleteFromPrimitiveListfinalizers":["a"]}}),
            SmpError::BadRequest(error::BAD_PRIMITIVE_LIST),
        ),
        (
            "malformed $setElementOrder key",
            json!({"spec":{"$setElementOrdercontainers":[]}}),
            SmpError::BadRequest(error::BAD_SET_ELEMENT_ORDER),
        ),
        (
            "merge list item without its merge key",
            json!({"spec":{"containers":[{"image":"x"}]}}),
            SmpError::Other("map: map[image:x] does not contain declared merge key: name".into()),
        ),
        (
            "$patch: merge in a list",
            json!({"spec":{"containers":[{"$patch":"merge"}]}}),
            SmpError::Other("merging lists cannot yet be specified in the patch".into()),
        ),
        (
            "lists of lists",
            json!({"metadata":{"finalizers":[["a"]]}}),
            SmpError::NoListOfLists,
        ),
    ];
    for (name, patch, want) in cases {
        let mut current = pod.clone();
        current["metadata"]["finalizers"] = json!([["x"]]);
        let got = smp("Pod", current, patch).expect_err(name);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn set_element_order_must_match_the_patch_list() {
    let current = json!({"spec":{"containers":[{"name":"a"},{"name":"b"}]}});
    let patch = json!({"spec":{"$setElementOrder/containers":[{"name":"a"}],
                               "containers":[{"name":"b","image":"x"}]}});
    match smp("Pod", current, patch) {
        Err(SmpError::Other(msg)) => assert!(msg.starts_with("the order in patch list:"), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
}
