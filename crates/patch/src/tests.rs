//! Table-driven tests through the public API, with the bodies kubectl sends.

use kinet_types::registry::lookup;
use kinet_types::Resource;
use serde_json::{json, Value};

use super::*;

fn res(group: &str, plural: &str) -> &'static Resource {
    lookup(group, "v1", plural).unwrap()
}

fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                 "type": "ClusterIP", "clusterIP": "10.96.0.10"}
    })
}

#[test]
fn content_types() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::Strategic),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        (
            "application/merge-patch+json; charset=utf-8",
            Some(PatchType::Merge),
        ),
        ("Application/JSON-Patch+JSON", Some(PatchType::Json)),
        ("application/apply-patch+cbor", None),
        ("application/json", None),
        ("", None),
    ];
    for (ct, want) in cases {
        assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
        if let Some(t) = want {
            assert_eq!(PatchType::from_content_type(t.content_type()), want);
        }
    }
}

#[test]
fn json_patch_operations() {
    let svc = res("", "services");
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "add and replace",
            json!([{"op":"add","path":"/metadata/labels/new","value":"x"},
                   {"op":"replace","path":"/spec/type","value":"NodePort"}]),
            json!({"/metadata/labels/new": "x", "/spec/type": "NodePort"}),
        ),
        (
            "remove",
            json!([{"op":"remove","path":"/metadata/labels/tier"}]),
            json!({"/metadata/labels/tier": null}),
        ),
        (
            "test then replace",
            json!([{"op":"test","path":"/spec/ports/0/port","value":80},
                   {"op":"replace","path":"/spec/ports/0/port","value":81}]),
            json!({"/spec/ports/0/port": 81}),
        ),
        (
            "move",
            json!([{"op":"move","from":"/metadata/labels/tier","path":"/metadata/labels/layer"}]),
            json!({"/metadata/labels/tier": null, "/metadata/labels/layer": "fe"}),
        ),
        (
            "copy",
            json!([{"op":"copy","from":"/metadata/labels/app","path":"/spec/selector/copy"}]),
            json!({"/spec/selector/copy": "web"}),
        ),
        (
            "append to a list",
            json!([{"op":"add","path":"/spec/ports/-","value":{"port":443}}]),
            json!({"/spec/ports/1": {"port": 443}}),
        ),
        (
            "a name change is returned faithfully",
            json!([{"op":"replace","path":"/metadata/name","value":"other"}]),
            json!({"/metadata/name": "other"}),
        ),
        ("null body is no patch", json!(null), json!({})),
    ];
    for (name, patch, changes) in cases {
        let got = apply_patch(
            svc,
            &service(),
            PatchType::Json,
            patch.to_string().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for (pointer, want) in changes.as_object().unwrap() {
            assert_eq!(
                got.pointer(pointer).unwrap_or(&Value::Null),
                want,
                "{name} {pointer}"
            );
        }
        // Everything not named stays.
        assert_eq!(got["spec"]["clusterIP"], "10.96.0.10", "{name}");
    }
}

#[test]
fn patch_errors() {
    let svc = res("", "services");
    let generic_422 = "the server rejected our request due to an error in our request";
    let cases: Vec<(&str, PatchType, &str, u16, &str, &str)> = vec![
        ("json: failing test", PatchType::Json, r#"[{"op":"test","path":"/spec/type","value":"NodePort"}]"#, 422, "Invalid", generic_422),
        ("json: missing path", PatchType::Json, r#"[{"op":"remove","path":"/spec/nope"}]"#, 422, "Invalid", generic_422),
        ("json: unknown op", PatchType::Json, r#"[{"op":"frob","path":"/spec"}]"#, 422, "Invalid", generic_422),
        ("json: add without value", PatchType::Json, r#"[{"op":"add","path":"/spec/x"}]"#, 422, "Invalid", generic_422),
        ("json: bad JSON", PatchType::Json, "[{", 400, "BadRequest", "error decoding patch: unexpected end of JSON input"),
        (
            "json: not a list",
            PatchType::Json,
            r#"{"op":"add"}"#,
            400,
            "BadRequest",
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
        ),
        (
            "json: path not a string",
            PatchType::Json,
            r#"[{"op":"add","path":5,"value":1}]"#,
            400,
            "BadRequest",
            "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.path of type string",
        ),
        ("merge: bad JSON", PatchType::Merge, "{labels}", 400, "BadRequest", "error decoding patch: invalid character 'l' looking for beginning of object key string"),
        (
            "merge: a list",
            PatchType::Merge,
            "[]",
            400,
            "BadRequest",
            "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}",
        ),
        ("merge: null", PatchType::Merge, "null", 400, "BadRequest", "Invalid JSON Patch"),
        ("strategic: bad JSON", PatchType::Strategic, "nope", 400, "BadRequest", "invalid character 'o' in literal null (expecting 'u')"),
        ("strategic: empty", PatchType::Strategic, "", 400, "BadRequest", "unexpected end of JSON input"),
        (
            "strategic: a string",
            PatchType::Strategic,
            r#""x""#,
            400,
            "BadRequest",
            "json: cannot unmarshal string into Go value of type map[string]interface {}",
        ),
        ("strategic: bad retainKeys", PatchType::Strategic, r#"{"spec":{"$retainKeys":1}}"#, 400, "BadRequest", "invalid patch format of retainKeys"),
        (
            "apply: wrong version",
            PatchType::Apply,
            r#"{"apiVersion":"apps/v1","kind":"Service","metadata":{"name":"web"}}"#,
            400,
            "BadRequest",
            "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: v1",
        ),
        (
            "apply: wrong kind",
            PatchType::Apply,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"}}"#,
            400,
            "BadRequest",
            "Incorrect kind specified in apply patch. Specified patch kind: Pod, expected: Service",
        ),
        (
            "apply: managedFields",
            PatchType::Apply,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","managedFields":[{}]}}"#,
            400,
            "BadRequest",
            "metadata.managedFields must be nil",
        ),
    ];
    for (name, patch_type, body, code, reason, message) in cases {
        let err = apply_patch(svc, &service(), patch_type, body.as_bytes()).expect_err(name);
        assert_eq!(
            (err.code, err.reason, err.message.as_str()),
            (code, reason, message),
            "{name}"
        );
        if code == 422 {
            assert_eq!(err.to_status()["details"], json!({}), "{name}");
        }
    }
}

#[test]
fn merge_patches_kubectl_sends() {
    let svc = res("", "services");
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "kubectl label",
            json!({"metadata":{"labels":{"env":"prod"}}}),
            json!({"app":"web","tier":"fe","env":"prod"}),
        ),
        (
            "kubectl label tier-",
            json!({"metadata":{"labels":{"tier":null}}}),
            json!({"app":"web"}),
        ),
        (
            "kubectl label --overwrite",
            json!({"metadata":{"labels":{"tier":"be"}}}),
            json!({"app":"web","tier":"be"}),
        ),
    ];
    for (name, patch, labels) in cases {
        let got = apply_patch(
            svc,
            &service(),
            PatchType::Merge,
            patch.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(got["metadata"]["labels"], labels, "{name}");
        assert_eq!(got["spec"], service()["spec"], "{name}");
    }
    // kubectl annotate onto an object without annotations; nulls inside new maps are dropped.
    let got = merge_patch(
        &service(),
        br#"{"metadata":{"annotations":{"a":"b","c":null}}}"#,
    )
    .unwrap();
    assert_eq!(got["metadata"]["annotations"], json!({"a": "b"}));
    // A list is replaced whole by a merge patch, even one strategic merge would merge.
    let got = merge_patch(&service(), br#"{"spec":{"ports":[{"port":443}]}}"#).unwrap();
    assert_eq!(got["spec"]["ports"], json!([{"port": 443}]));
    // kubectl scale on the scale subresource.
    let scale = json!({"kind":"Scale","apiVersion":"autoscaling/v1","spec":{"replicas":1}});
    let got = merge_patch(&scale, br#"{"spec":{"replicas":2}}"#).unwrap();
    assert_eq!(got["spec"]["replicas"], 2);
}

#[test]
fn strategic_through_the_api_keeps_key_order() {
    let svc = res("", "services");
    let body =
        br#"{"spec":{"ports":[{"port":80,"name":"http"}]},"metadata":{"labels":{"app":"api"}}}"#;
    let got = apply_patch(svc, &service(), PatchType::Strategic, body).unwrap();
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"}])
    );
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(
        got["metadata"]["labels"],
        json!({"app": "api", "tier": "fe"})
    );
}

#[test]
fn server_side_apply_create_and_update() {
    let deploy = res("apps", "deployments");
    let yaml = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        ports:\n        - containerPort: 80\n";
    let created = server_side_apply(deploy, None, yaml).unwrap();
    assert_eq!(created["spec"]["replicas"], 2);
    assert_eq!(
        created["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );

    // The stored object carries server-set fields; re-applying keeps them and merges lists.
    let mut stored = created.clone();
    stored["metadata"]["uid"] = json!("u-1");
    stored["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    stored["status"] = json!({"replicas": 2});
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"x": "y"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluentd"}]}}}
    });
    let updated = apply_patch(
        deploy,
        &stored,
        PatchType::Apply,
        body.to_string().as_bytes(),
    )
    .unwrap();
    let containers = &updated["spec"]["template"]["spec"]["containers"];
    assert_eq!(updated["spec"]["replicas"], 3);
    assert_eq!(updated["metadata"]["uid"], "u-1");
    assert_eq!(updated["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(updated["status"], json!({"replicas": 2}));
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(containers[0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(containers[0]["ports"], json!([{"containerPort": 80}]));
    assert_eq!(containers[1], json!({"name": "log", "image": "fluentd"}));

    // Explicit null removes; non-merging lists are replaced.
    let body =
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","labels":null},
        "spec":{"selector":{"matchExpressions":[{"key":"a","operator":"Exists"}]}}}"#;
    let updated = server_side_apply(deploy, Some(&updated), body).unwrap();
    assert!(updated["metadata"].get("labels").is_none());
    assert_eq!(
        updated["spec"]["selector"]["matchExpressions"][0]["key"],
        "a"
    );
    assert_eq!(
        updated["spec"]["selector"]["matchLabels"],
        json!({"app": "web"})
    );
}

#[test]
fn server_side_apply_body_errors() {
    let cm = res("", "configmaps");
    let err = server_side_apply(cm, None, b"a: [1\n").unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.message.starts_with("error decoding YAML: "),
        "{}",
        err.message
    );
    let err = server_side_apply(cm, None, b"").unwrap_err();
    assert_eq!(
        err.message,
        "Incorrect version specified in apply patch. Specified patch version: , expected: v1"
    );
    let ok = server_side_apply(
        cm,
        None,
        b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"a\":\"1\",\"b\":null}}",
    )
    .unwrap();
    assert_eq!(ok["data"], json!({"a": "1"}));
}
