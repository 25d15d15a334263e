//! Hand-built wire bytes for the per-field JSON rules.

use super::decode_message;
use crate::schema::*;
use serde_json::{json, Value};

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A varint field.
fn v(n: u32, value: u64) -> Vec<u8> {
    [varint(u64::from(n << 3)), varint(value)].concat()
}

/// A length-delimited field.
fn l(n: u32, bytes: &[u8]) -> Vec<u8> {
    [
        varint(u64::from(n << 3 | 2)),
        varint(bytes.len() as u64),
        bytes.to_vec(),
    ]
    .concat()
}

fn entry(k: &str, val: &[u8]) -> Vec<u8> {
    [l(1, k.as_bytes()), l(2, val)].concat()
}

fn decode(msg: &Message, buf: &[u8]) -> Value {
    Value::Object(decode_message(msg, buf, "", 0).unwrap_or_else(|e| panic!("{}", e.message)))
}

fn error(msg: &Message, buf: &[u8]) -> String {
    let e = decode_message(msg, buf, "", 0).unwrap_err();
    assert_eq!(e.code, 400);
    e.message
}

#[test]
fn go_zero_values_are_dropped_like_omitempty() {
    // ConfigMap as gogo writes it: empty strings, generation 0, an empty Time, immutable unset.
    let meta = [
        l(1, b"x"),
        l(2, b""),
        l(3, b""),
        l(5, b""),
        v(7, 0),
        l(8, b""),
    ]
    .concat();
    let got = decode(&CORE_CONFIG_MAP, &l(1, &meta));
    assert_eq!(
        got.to_string(),
        r#"{"metadata":{"name":"x","creationTimestamp":null}}"#
    );
}

#[test]
fn pointer_zero_values_are_kept() {
    let cm = [l(1, &[]), v(4, 0)].concat();
    assert_eq!(decode(&CORE_CONFIG_MAP, &cm)["immutable"], false);
    let spec = [v(1, 0), v(9, 0)].concat();
    let got = decode(&APPS_DEPLOYMENT_SPEC, &spec);
    assert_eq!(got["replicas"], 0);
    assert_eq!(got["progressDeadlineSeconds"], 0);
    assert!(got.get("revisionHistoryLimit").is_none());
}

#[test]
fn fields_without_omitempty_get_go_zero_values() {
    // ContainerPort.containerPort and Container.name have no omitempty; PodSpec.containers neither.
    assert_eq!(
        decode(&CORE_CONTAINER_PORT, &[]).to_string(),
        r#"{"containerPort":0}"#
    );
    assert_eq!(
        decode(&CORE_CONTAINER, &[]).to_string(),
        r#"{"name":"","resources":{}}"#
    );
    assert_eq!(decode(&CORE_POD_SPEC, &[])["containers"], Value::Null);
}

#[test]
fn unknown_field_numbers_are_errors_with_a_path() {
    let template = l(2, &v(99, 1));
    let msg = error(&APPS_DEPLOYMENT, &l(2, &l(3, &template)));
    assert!(msg.contains("unknown field number 99"), "{msg}");
    assert!(msg.contains("PodSpec at spec.template.spec"), "{msg}");
    let msg = error(&CORE_CONFIG_MAP, &v(42, 1));
    assert!(
        msg.contains("field number 42 in protobuf message ConfigMap at the object root"),
        "{msg}"
    );
}

#[test]
fn wrong_wire_types_are_errors() {
    let msg = error(&CORE_CONFIG_MAP, &l(1, &v(1, 5)));
    assert!(msg.contains("metadata.name"), "{msg}");
    assert!(error(&CORE_CONFIG_MAP, &v(1, 5)).contains("expected a length-delimited message"));
    assert!(error(&CORE_CONFIG_MAP, &l(1, &[0x0a, 0x09])).contains("malformed"));
}

#[test]
fn maps_are_sorted_and_missing_values_are_zero() {
    let cm = [
        l(2, &entry("zeta", b"1")),
        l(2, &entry("alpha", b"2")),
        l(2, &l(1, b"empty")),
        l(3, &entry("bin", &[0xff, 0x00])),
    ]
    .concat();
    let got = decode(&CORE_CONFIG_MAP, &cm);
    assert_eq!(
        got.to_string(),
        r#"{"metadata":{"creationTimestamp":null},"data":{"alpha":"2","empty":"","zeta":"1"},"binaryData":{"bin":"/wA="}}"#
    );
    assert!(error(&CORE_CONFIG_MAP, &l(2, &v(3, 1))).contains("map entry"));
}

#[test]
fn repeated_scalars_packed_and_unpacked() {
    let unpacked = [v(4, 1), v(4, 2)].concat();
    let packed = l(4, &[varint(1), varint(2)].concat());
    for buf in [unpacked, packed] {
        assert_eq!(
            decode(&CORE_POD_SECURITY_CONTEXT, &buf),
            json!({"supplementalGroups": [1, 2]})
        );
    }
    let groups = [l(4, &varint(1)), v(4, 2)].concat();
    assert_eq!(
        decode(&CORE_POD_SECURITY_CONTEXT, &groups),
        json!({"supplementalGroups": [1, 2]})
    );
}

#[test]
fn repeated_message_occurrences_merge() {
    // Protobuf merges a message field that appears twice.
    let cm = [l(1, &l(1, b"x")), l(1, &l(3, b"ns"))].concat();
    assert_eq!(
        decode(&CORE_CONFIG_MAP, &cm)["metadata"],
        json!({"name": "x", "namespace": "ns", "creationTimestamp": null})
    );
}

#[test]
fn inline_structs_print_in_the_parent() {
    // Volume {1: name, 2: VolumeSource (inline) {2: emptyDir}}.
    let vol = [l(1, b"data"), l(2, &l(2, &[]))].concat();
    assert_eq!(
        decode(&CORE_VOLUME, &vol).to_string(),
        r#"{"name":"data","emptyDir":{}}"#
    );
    // Probe {1: ProbeHandler (inline) {2: httpGet {1: path, 2: port}}, 2: initialDelaySeconds}.
    let port = [v(1, 1), l(3, b"http")].concat();
    let http_get = [l(1, b"/healthz"), l(2, &port), l(3, b""), l(4, b"")].concat();
    let probe = [l(1, &l(2, &http_get)), v(2, 5), v(3, 0)].concat();
    assert_eq!(
        decode(&CORE_PROBE, &probe).to_string(),
        r#"{"httpGet":{"path":"/healthz","port":"http"},"initialDelaySeconds":5}"#
    );
}

#[test]
fn resource_quantities() {
    let q = |s: &str| l(1, s.as_bytes());
    let limits = [
        l(1, &entry("memory", &q("64Mi"))),
        l(1, &entry("cpu", &q("100m"))),
    ]
    .concat();
    let got = decode(&CORE_RESOURCE_REQUIREMENTS, &limits);
    assert_eq!(
        got.to_string(),
        r#"{"limits":{"cpu":"100m","memory":"64Mi"}}"#
    );
}

#[test]
fn int32_and_int64_widths() {
    // A negative int32 is a ten-byte varint on the wire; an int64 keeps all 64 bits.
    let neg = v(2, (-1i64) as u64);
    assert_eq!(decode(&CORE_CONTAINER_PORT, &neg)["hostPort"], -1);
    let big = v(7, 1 << 40);
    assert_eq!(decode(&META_OBJECT_META, &big)["generation"], 1u64 << 40);
}

#[test]
fn an_eviction_carries_its_delete_options() {
    // What `kubectl drain` posts: the pod's name and namespace, a grace period and a dry run.
    let meta = [l(1, b"web-0"), l(3, b"default")].concat();
    let preconditions = l(1, b"uid-1");
    let options = [v(1, 0), l(2, &preconditions), l(5, b"All")].concat();
    let got = decode(&POLICY_EVICTION, &[l(1, &meta), l(2, &options)].concat());
    assert_eq!(got["metadata"]["name"], "web-0");
    assert_eq!(
        got["deleteOptions"],
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}, "dryRun": ["All"]})
    );
}
