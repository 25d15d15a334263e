//! CustomResourceDefinitions as a new user meets them: Gateway-API-shaped definitions (our own
//! text, in the shape of the standard channel: several versions, nested schemas with required
//! fields, enums and defaults, a status subresource and printer columns) apply, and kubectl
//! gets, explains, validates, defaults, converts and prints their objects right away.

use crate::api_schema::kubectl_stdin;
use crate::harness::{show, Cluster};
use crate::services::poll;

/// The schema of a condition list, shared by both status blocks below.
const CONDITIONS: &str = r#"
              conditions:
                type: array
                maxItems: 8
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string, maxLength: 316}
                    status: {type: string, enum: ["True", "False", "Unknown"]}
                    reason: {type: string}
                    message: {type: string, maxLength: 32768}
                    lastTransitionTime: {type: string, format: date-time}"#;

fn crds() -> String {
    let version = |name: &str, storage: bool, schema: &str, columns: &str| {
        format!(
            r#"
  - name: {name}
    served: true
    storage: {storage}
    subresources:
      status: {{}}
    additionalPrinterColumns:{columns}
    schema:
      openAPIV3Schema:
        description: Our own text, shaped like Gateway API's.
        type: object
        properties:{schema}"#
        )
    };
    let class_columns = r#"
    - {name: Controller, type: string, jsonPath: .spec.controllerName}
    - {name: Accepted, type: string, jsonPath: '.status.conditions[?(@.type=="Accepted")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    - {name: Description, type: string, jsonPath: .spec.description, priority: 1}"#;
    let class_schema = format!(
        r#"
          spec:
            type: object
            required: [controllerName]
            properties:
              controllerName:
                type: string
                minLength: 1
                maxLength: 253
                pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9/._-]+$'
                x-kubernetes-validations:
                - {{message: Value is immutable, rule: self == oldSelf}}
              description: {{type: string, maxLength: 64}}
          status:
            type: object
            default: {{conditions: [{{type: Accepted, status: Unknown, reason: Pending, message: Waiting for controller, lastTransitionTime: "1970-01-01T00:00:00Z"}}]}}
            properties:{CONDITIONS}"#
    );
    let route_columns = r#"
    - {name: Hostnames, type: string, jsonPath: .spec.hostnames}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}"#;
    let route_schema = r#"
          spec:
            type: object
            description: The desired state of the route.
            properties:
              parentRefs:
                type: array
                description: The Gateways this route attaches to.
                maxItems: 32
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string, minLength: 1, maxLength: 253}
                    sectionName: {type: string}
                    port: {type: integer, format: int32, minimum: 1, maximum: 65535}
              hostnames:
                type: array
                maxItems: 16
                items: {type: string, format: hostname}
              rules:
                type: array
                default: [{matches: [{path: {type: PathPrefix, value: /}}]}]
                items:
                  type: object
                  properties:
                    matches:
                      type: array
                      default: [{path: {type: PathPrefix, value: /}}]
                      items:
                        type: object
                        properties:
                          path:
                            type: object
                            default: {type: PathPrefix, value: /}
                            x-kubernetes-validations:
                            - message: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']
                              rule: "(self.type in ['Exact','PathPrefix']) ? self.value.startsWith('/') : true"
                            - message: must not contain '//' when type one of ['Exact', 'PathPrefix']
                              rule: "(self.type in ['Exact','PathPrefix']) ? !self.value.contains('//') : true"
                            properties:
                              type:
                                type: string
                                default: PathPrefix
                                enum: [Exact, PathPrefix, RegularExpression]
                              value: {type: string, default: /, maxLength: 1024}
                    filters:
                      type: array
                      maxItems: 16
                      items:
                        type: object
                        required: [type]
                        oneOf:
                        - required: [requestRedirect]
                        - required: [urlRewrite]
                        x-kubernetes-validations:
                        - message: filter.requestRedirect must be nil if the filter.type is not RequestRedirect
                          rule: "!(has(self.requestRedirect) && self.type != 'RequestRedirect')"
                        - message: filter.urlRewrite must be nil if the filter.type is not URLRewrite
                          rule: "!(has(self.urlRewrite) && self.type != 'URLRewrite')"
                        properties:
                          type: {type: string, enum: [RequestRedirect, URLRewrite]}
                          requestRedirect:
                            type: object
                            properties:
                              statusCode: {type: integer, default: 302, enum: [301, 302]}
                          urlRewrite:
                            type: object
                            properties:
                              hostname: {type: string, maxLength: 253}
                    backendRefs:
                      type: array
                      items:
                        type: object
                        required: [name]
                        properties:
                          name: {type: string}
                          port: {type: integer, minimum: 1, maximum: 65535}
                          weight: {type: integer, default: 1, minimum: 0, maximum: 1000000}
          status:
            type: object
            properties:
              parents:
                type: array
                items:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true"#;
    let crd = |plural: &str, kind: &str, scope: &str, short: &str, versions: String| {
        format!(
            r#"---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.gateway.networking.k8s.io
spec:
  group: gateway.networking.k8s.io
  scope: {scope}
  names:
    plural: {plural}
    singular: {singular}
    kind: {kind}
    listKind: {kind}List
    shortNames: [{short}]
    categories: [gateway-api]
  versions:{versions}
"#,
            singular = kind.to_lowercase()
        )
    };
    let class_versions = version("v1", true, &class_schema, class_columns)
        + &version("v1beta1", false, &class_schema, class_columns);
    let route_versions = version("v1", true, route_schema, route_columns)
        + &version("v1beta1", false, route_schema, route_columns);
    crd(
        "gatewayclasses",
        "GatewayClass",
        "Cluster",
        "gc",
        class_versions,
    ) + &crd(
        "httproutes",
        "HTTPRoute",
        "Namespaced",
        "hr",
        route_versions,
    )
}

const OBJECTS: &str = r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: kinet
spec:
  controllerName: kinet.dev/gateway
  description: kinet's own
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.example.com]
  rules:
  - backendRefs: [{name: web, port: 80}]
    filters: [{type: RequestRedirect, requestRedirect: {}}]
"#;

const INVALID_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: bad
spec:
  parentRefs: [{port: 80}]
  rules:
  - matches: [{path: {type: Regex}}]
"#;

/// Breaks the junctors and the CEL rules, but no type or enum (which would stop the rules).
const RULE_BREAKING_ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: rules
spec:
  rules:
  - matches: [{path: {type: Exact, value: api}}]
    filters: [{type: RequestRedirect, requestRedirect: {}, urlRewrite: {hostname: b.example.com}}]
"#;

/// A definition whose schema kube-apiserver refuses: a type under anyOf, and a rule calling a
/// function CEL's Kubernetes environment does not have.
const UNSTRUCTURAL_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            anyOf: [{type: object, required: [size]}]
            x-kubernetes-validations: [{rule: self.name.isHostname()}]
            properties:
              size: {type: integer}
              name: {type: string}
"#;

fn run_ok(c: &Cluster, args: &[&str], manifest: &str) -> String {
    let out = kubectl_stdin(c, args, manifest);
    assert!(out.status.success(), "kubectl {args:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gateway_api_shaped_definitions_serve_their_resources() {
    let c = Cluster::up(1);
    run_ok(&c, &["apply"], &crds());

    // Served right after the apply, discovery included (kubectl's cache revalidates).
    let out = c.kubectl(&["get", "gatewayclasses"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found"),
        "{}",
        show(&out)
    );
    let established = c.kubectl_ok(&[
        "get", "crd", "httproutes.gateway.networking.k8s.io", "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Established")].status} {.status.acceptedNames.kind}"#,
    ]);
    assert_eq!(established, "True HTTPRoute");

    let explained = c.kubectl_ok(&["explain", "httproute.spec"]);
    assert!(explained.contains("HTTPRoute"), "{explained}");
    assert!(
        explained.contains("The desired state of the route."),
        "{explained}"
    );
    assert!(explained.contains("parentRefs"), "{explained}");
    let deeper = c.kubectl_ok(&["explain", "httproutes.spec.parentRefs"]);
    assert!(
        deeper.contains("The Gateways this route attaches to."),
        "{deeper}"
    );
    let name_line = deeper
        .lines()
        .find(|l| l.trim_start().starts_with("name"))
        .unwrap_or_default();
    assert!(
        name_line.contains("<string>") && name_line.contains("-required-"),
        "{deeper}"
    );

    run_ok(&c, &["apply"], OBJECTS);

    // Refused by the schema, with kube-apiserver's message.
    let out = kubectl_stdin(&c, &["apply"], INVALID_ROUTE);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // kubectl prints the causes of the 422 Status as a list.
    assert!(err.contains(r#"The HTTPRoute "bad" is invalid"#), "{err}");
    assert!(
        err.contains("spec.parentRefs[0].name: Required value"),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.rules[0].matches[0].path.type: Unsupported value: "Regex": supported values: "Exact", "PathPrefix", "RegularExpression""#),
        "{err}"
    );
    // oneOf and CEL rules, with kube-apiserver's messages.
    let out = kubectl_stdin(&c, &["apply"], RULE_BREAKING_ROUTE);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        r#"<nil>: Invalid value: "": "spec.rules[0].filters[0]" must validate one and only one schema (oneOf). Found 2 valid alternatives"#,
        r#"spec.rules[0].filters[0]: Invalid value: "object": filter.urlRewrite must be nil if the filter.type is not URLRewrite"#,
        r#"spec.rules[0].matches[0].path: Invalid value: "object": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"#,
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
    // A transition rule: allowed on create, compared with the old object on update.
    let immutable = c.kubectl(&[
        "patch",
        "gatewayclass",
        "kinet",
        "--type=merge",
        "-p",
        r#"{"spec":{"controllerName":"example.com/other"}}"#,
    ]);
    assert!(!immutable.status.success());
    assert!(
        String::from_utf8_lossy(&immutable.stderr)
            .contains(r#"spec.controllerName: Invalid value: "string": Value is immutable"#),
        "{}",
        show(&immutable)
    );
    // A definition that is not structural, or whose rule does not compile, is refused.
    let out = kubectl_stdin(&c, &["apply"], UNSTRUCTURAL_CRD);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let spec = "spec.versions[0].schema.openAPIV3Schema.properties[spec]";
    for expected in [
        format!("{spec}.anyOf[0].type: Forbidden: must be empty to be structural"),
        format!("{spec}.x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:\"self.name.isHostname()\""),
        "compilation failed: ERROR: <input>:1:21: undeclared reference to 'isHostname' (in container '')".to_string(),
    ] {
        assert!(err.contains(&expected), "{expected}\n{err}");
    }

    // Unknown fields are pruned, and Strict validation names them.
    let strict = kubectl_stdin(
        &c,
        &["apply", "--validate=strict"],
        &OBJECTS.replace(
            "description: kinet's own",
            "description: kinet's own\n  colour: red",
        ),
    );
    assert!(!strict.status.success());
    assert!(
        String::from_utf8_lossy(&strict.stderr).contains(r#"unknown field "spec.colour""#),
        "{}",
        show(&strict)
    );

    // Defaults from the schema, stored in the storage version and served in the one asked.
    let route = c.kubectl_ok(&[
        "get", "httproutes.v1.gateway.networking.k8s.io", "web", "-o",
        "jsonpath={.apiVersion} {.spec.rules[0].matches[0].path.type} {.spec.rules[0].matches[0].path.value} {.spec.rules[0].backendRefs[0].weight}",
    ]);
    assert_eq!(route, "gateway.networking.k8s.io/v1 PathPrefix / 1");
    let beta = c.kubectl_ok(&[
        "get",
        "httproutes.v1beta1.gateway.networking.k8s.io",
        "web",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(beta, "gateway.networking.k8s.io/v1beta1");
    let raw = c.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/gateway.networking.k8s.io/v1beta1/namespaces/default/httproutes",
    ]);
    let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(list["kind"], "HTTPRouteList");
    assert_eq!(
        list["items"][0]["apiVersion"],
        "gateway.networking.k8s.io/v1beta1"
    );

    // Status only through /status: the main resource ignores it.
    let accepted = r#"{"status":{"conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    c.kubectl_ok(&[
        "patch",
        "gatewayclass",
        "kinet",
        "--type=merge",
        "-p",
        accepted,
    ]);
    let before = c.kubectl_ok(&[
        "get",
        "gc",
        "kinet",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Accepted")].status}"#,
    ]);
    assert_eq!(
        before, "Unknown",
        "the default status, untouched by the main resource"
    );
    c.kubectl_ok(&[
        "patch",
        "gatewayclass",
        "kinet",
        "--subresource=status",
        "--type=merge",
        "-p",
        accepted,
    ]);

    // Printer columns, with the priority-1 one only in -o wide.
    let table = c.kubectl_ok(&["get", "gatewayclasses"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CONTROLLER", "ACCEPTED", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["kinet", "kinet.dev/gateway", "True"], "{table}");
    let wide = c.kubectl_ok(&["get", "gatewayclasses", "-o", "wide"]);
    assert!(
        wide.contains("DESCRIPTION") && wide.contains("kinet's own"),
        "{wide}"
    );
    let routes = c.kubectl_ok(&["get", "hr"]);
    assert!(
        routes.contains("HOSTNAMES") && routes.contains(r#"["web.example.com"]"#),
        "{routes}"
    );
    let category = c.kubectl_ok(&["get", "gateway-api", "-o", "name"]);
    assert!(
        category.contains("gatewayclass.gateway.networking.k8s.io/kinet"),
        "{category}"
    );

    // Strategic merge patches are refused for custom resources, as upstream.
    let smp = c.kubectl(&[
        "patch",
        "hr",
        "web",
        "--type=strategic",
        "-p",
        r#"{"spec":{"hostnames":["b.example.com"]}}"#,
    ]);
    assert!(!smp.status.success());
    assert!(
        String::from_utf8_lossy(&smp.stderr).contains("UnsupportedMediaType")
            || String::from_utf8_lossy(&smp.stderr).contains("unknown format"),
        "{}",
        show(&smp)
    );

    // Deleting a namespace deletes the custom resources in it, found through discovery.
    c.kubectl_ok(&["create", "namespace", "routes"]);
    let route = OBJECTS.split("---").nth(2).unwrap();
    run_ok(&c, &["apply", "-n", "routes"], route);
    c.kubectl_ok(&["delete", "namespace", "routes", "--timeout=60s"]);
    let left = c.kubectl_ok(&[
        "get",
        "--raw",
        "/apis/gateway.networking.k8s.io/v1/namespaces/routes/httproutes",
    ]);
    assert!(left.contains(r#""items":[]"#), "{left}");

    // Deleting a definition deletes its objects.
    c.kubectl_ok(&["delete", "crd", "httproutes.gateway.networking.k8s.io"]);
    poll("the HTTPRoute resource to go", || {
        let out = c.kubectl(&[
            "get",
            "--raw",
            "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes",
        ]);
        (!out.status.success()).then_some(())
    });
    run_ok(&c, &["apply"], &crds());
    let again = c.kubectl(&["get", "httproutes", "-o", "name"]);
    assert!(
        again.status.success() && again.stdout.is_empty(),
        "{}",
        show(&again)
    );
}
