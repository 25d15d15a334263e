//! Rules shaped like Gateway API's standard channel, and the exact messages kube-apiserver
//! gives for them.

use super::*;
use serde_json::json;

fn gateway_schema() -> Value {
    json!({"type": "object",
    "x-kubernetes-validations": [{"rule": "self.metadata.name != 'forbidden'"}],
    "properties": {"spec": {"type": "object",
    "x-kubernetes-validations": [{"rule": "self.controllerName == oldSelf.controllerName",
        "message": "Value is immutable", "fieldPath": ".controllerName"}],
    "properties": {
        "controllerName": {"type": "string"},
        "namespace": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self.size() <= 10"}]},
        "listeners": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "protocol": {"type": "string"},
                "hostname": {"type": "string"}, "port": {"type": "integer"}},
                "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port",
                    "message": "port is immutable", "reason": "FieldValueForbidden"}]},
            "x-kubernetes-validations": [
                {"rule": "self.all(l, l.protocol in ['TCP', 'UDP'] ? !has(l.hostname) : true)",
                 "message": "hostname must not be specified for protocols ['TCP', 'UDP']"},
                {"rule": "self.all(l1, self.exists_one(l2, l1.name == l2.name))",
                 "message": "Listener name must be unique within the Gateway"}]},
        "path": {"type": "object", "properties": {
                "type": {"type": "string"}, "value": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "(self.type in ['Exact', 'PathPrefix']) ? self.value.startsWith('/') : true",
                 "message": "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"},
                {"rule": "(self.type in ['Exact', 'PathPrefix']) ? !self.value.contains('//') : true",
                 "message": "must not contain '//' when type one of ['Exact', 'PathPrefix']"},
                {"rule": "self.value.matches('^(?:[-A-Za-z0-9/._~!$&()*+,;=:@]|[%][0-9a-fA-F]{2})+$')"}]},
        "address": {"type": "string", "x-kubernetes-validations": [
            {"rule": "isIP(self)", "messageExpression": "'not an IP address: ' + self",
             "reason": "FieldValueForbidden"}]},
        "timeouts": {"type": "object", "properties": {
                "request": {"type": "string"}, "backendRequest": {"type": "string"}},
            "x-kubernetes-validations": [{"rule": "!(has(self.request) && has(self.backendRequest) && duration(self.request) != duration('0s') && duration(self.backendRequest) > duration(self.request))",
                "message": "backendRequest timeout cannot be longer than request timeout"}]},
        "labels": {"type": "object", "additionalProperties": {"type": "string",
            "x-kubernetes-validations": [{"rule": "self != ''", "message": "must not be empty"}]}}
    }}}})
}

fn gateway() -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"controllerName": "kinet.dev/gateway", "namespace": "default",
            "listeners": [{"name": "http", "protocol": "HTTP", "hostname": "a.example.com", "port": 80},
                          {"name": "dns", "protocol": "UDP", "port": 53}],
            "path": {"type": "PathPrefix", "value": "/api"},
            "address": "10.0.0.1",
            "timeouts": {"request": "10s", "backendRequest": "2s"},
            "labels": {"app": "web"}}})
}

fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
    Rules::new(&gateway_schema())
        .validate(obj, old)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_valid_object_passes_on_create_and_update() {
    assert_eq!(messages(&gateway(), None), Vec::<String>::new());
    assert_eq!(messages(&gateway(), Some(&gateway())), Vec::<String>::new());
}

#[test]
fn failures_carry_the_message_reason_and_field_path() {
    let mut bad = gateway();
    bad["metadata"]["name"] = json!("forbidden");
    bad["spec"]["namespace"] = json!("far-too-long-a-name");
    bad["spec"]["listeners"] = json!([{"name": "a", "protocol": "TCP", "hostname": "x", "port": 1},
        {"name": "a", "protocol": "HTTP", "port": 2}]);
    bad["spec"]["path"] = json!({"type": "Exact", "value": "a//b"});
    bad["spec"]["address"] = json!("nope");
    bad["spec"]["timeouts"]["backendRequest"] = json!("1m");
    bad["spec"]["labels"]["empty"] = json!("");
    assert_eq!(
        messages(&bad, None),
        [
            r#"<nil>: Invalid value: "object": failed rule: self.metadata.name != 'forbidden'"#,
            r#"spec.namespace: Invalid value: "string": failed rule: self.size() <= 10"#,
            r#"spec.listeners: Invalid value: "array": hostname must not be specified for protocols ['TCP', 'UDP']"#,
            r#"spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway"#,
            r#"spec.path: Invalid value: "object": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"#,
            r#"spec.path: Invalid value: "object": must not contain '//' when type one of ['Exact', 'PathPrefix']"#,
            r#"spec.address: Forbidden: not an IP address: nope"#,
            r#"spec.timeouts: Invalid value: "object": backendRequest timeout cannot be longer than request timeout"#,
            r#"spec.labels[empty]: Invalid value: "string": must not be empty"#,
        ]
    );
}

#[test]
fn transition_rules_compare_with_the_old_object_where_it_has_the_node() {
    let mut changed = gateway();
    changed["spec"]["controllerName"] = json!("other.dev/gateway");
    // A new listener has no old self; a kept one (matched by its key) does.
    changed["spec"]["listeners"][1]["port"] = json!(5353);
    changed["spec"]["listeners"][0]["name"] = json!("web");
    assert_eq!(messages(&changed, None), Vec::<String>::new());
    assert_eq!(
        messages(&changed, Some(&gateway())),
        [
            r#"spec.controllerName: Invalid value: "object": Value is immutable"#,
            "spec.listeners[1]: Forbidden: port is immutable",
        ]
    );
}

#[test]
fn evaluation_errors_name_the_rule() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"a": {"type": "string"}, "n": {"x-kubernetes-int-or-string": true}},
        "x-kubernetes-validations": [
            {"rule": "self.a == 'x'", "message": "a must be x"},
            {"rule": "self.n > 1"}]}}});
    let errors: Vec<String> = Rules::new(&schema)
        .validate(&json!({"spec": {"n": "two"}}), None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            r#"spec: Invalid value: "object": no such key: a evaluating rule: a must be x"#,
            r#"spec: Invalid value: "object": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.n > 1"#,
        ]
    );
}

#[test]
fn reserved_and_punctuated_property_names_are_escaped() {
    assert_eq!(
        convert::escape("namespace").as_deref(),
        Some("__namespace__")
    );
    assert_eq!(
        convert::escape("a-b.c/d__e").as_deref(),
        Some("a__dash__b__dot__c__slash__d__underscores__e")
    );
    assert_eq!(convert::escape("1st"), None);
    assert_eq!(convert::escape("a b"), None);
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
        "properties": {"namespace": {"type": "string"}, "x-y": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.__namespace__ == 'ns' && self.x__dash__y == 2"}]}}});
    let rules = Rules::new(&schema);
    assert!(rules
        .validate(&json!({"spec": {"namespace": "ns", "x-y": 2}}), None)
        .is_empty());
    assert_eq!(
        rules.validate(&json!({"spec": {"namespace": "ns", "x-y": 3}}), None)[0].to_string(),
        r#"spec: Invalid value: "object": failed rule: self.__namespace__ == 'ns' && self.x__dash__y == 2"#
    );
}

#[test]
fn kubernetes_library_checks() {
    assert!(library::ip("10.0.0.1") && library::ip("fd00::1") && !library::ip("10.0.0"));
    assert!(library::cidr("10.0.0.0/8") && !library::cidr("10.0.0.0/33"));
    assert!(library::request_uri("https://example.com/x") && library::request_uri("/a"));
    assert!(!library::request_uri("example.com") && !library::request_uri("http://a b"));
}

fn definition_errors(rules: Value) -> Vec<String> {
    let schema = json!({"type": "object", "properties": {"x": {"type": "string"}},
        "x-kubernetes-validations": rules});
    let mut errors = Vec::new();
    check_definition(&schema, "s", &mut errors);
    errors.iter().map(ToString::to_string).collect()
}

#[test]
fn a_definition_with_bad_rules_is_refused() {
    assert_eq!(
        definition_errors(json!([{"rule": "self.x.isHostname()"}])),
        [concat!(
            r#"s.x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:"self.x.isHostname()", Message:"", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: "#,
            "compilation failed: ERROR: <input>:1:18: undeclared reference to 'isHostname' (in container '')\n | self.x.isHostname()\n | .................^"
        )]
    );
    assert_eq!(
        definition_errors(json!([{"rule": "other.x == 1"}]))[0]
            .split_once(": compilation failed: ")
            .map(|(_, detail)| detail),
        Some("ERROR: <input>:1:1: undeclared reference to 'other' (in container '')\n | other.x == 1\n | ^")
    );
    let syntax = definition_errors(json!([{"rule": "self.x =="}]));
    assert!(
        syntax[0].contains("compilation failed: ERROR: <input>:1:"),
        "{syntax:?}"
    );
    assert_eq!(
        definition_errors(json!([
            {"rule": ""},
            {"rule": "true", "reason": "Bad", "fieldPath": ".y"},
            {"rule": "self.x == 'a'\n|| true", "messageExpression": " "}])),
        [
            "s.x-kubernetes-validations[0].rule: Required value: rule is not specified",
            r#"s.x-kubernetes-validations[1].reason: Unsupported value: "Bad": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired""#,
            r#"s.x-kubernetes-validations[1].fieldPath: Invalid value: ".y": fieldPath must be a valid path: does not refer to a valid field"#,
            "s.x-kubernetes-validations[2].message: Required value: message must be specified if rule contains line breaks",
            "s.x-kubernetes-validations[2].messageExpression: Required value: messageExpression must be non-empty if specified",
        ]
    );
}

#[test]
fn transition_rules_need_items_that_correlate() {
    let schema = json!({"type": "object", "properties": {
        "ports": {"type": "array", "items": {"type": "object",
            "properties": {"items": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}},
                    "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}},
        "named": {"type": "array", "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}});
    let mut errors = Vec::new();
    check_definition(&schema, "s", &mut errors);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            r#"s.properties[ports].items.properties[items].items.x-kubernetes-validations[0].rule: Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion of the schema within s.properties[ports]"#
        ]
    );
}
