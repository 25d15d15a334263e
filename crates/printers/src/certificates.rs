//! Rows for CertificateSigningRequests (printers.go `printCertificateSigningRequest`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::duration::{human_age, human_duration};
use crate::util::{arr_at, at, created, name, str_at};

/// CONDITION: each condition's type, then Issued once a certificate is there; Pending if none.
fn condition(csr: &Value) -> String {
    let mut shown: Vec<&str> = arr_at(csr, &["status", "conditions"])
        .iter()
        .filter_map(|c| c["type"].as_str())
        .collect();
    if !str_at(csr, &["status", "certificate"]).is_empty() {
        shown.push("Issued");
    }
    if shown.is_empty() {
        "Pending".into()
    } else {
        shown.join(",")
    }
}

pub(crate) fn certificate_signing_request(csr: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let or_none = |s: &str| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s.to_string()
        }
    };
    let requested = at(csr, &["spec", "expirationSeconds"])
        .and_then(Value::as_i64)
        .map_or("<none>".to_string(), human_duration);
    vec![
        json!(name(csr)),
        json!(human_age(created(csr), now)),
        json!(or_none(str_at(csr, &["spec", "signerName"]))),
        json!(or_none(str_at(csr, &["spec", "username"]))),
        json!(requested),
        json!(condition(csr)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_show_their_signer_requestor_and_state() {
        let now: DateTime<Utc> = "2026-01-01T00:10:00Z".parse().unwrap();
        let csr = json!({"metadata": {"name": "node-csr-a", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                     "username": "system:bootstrap:abcdef"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "Y2VydA=="}});
        assert_eq!(
            certificate_signing_request(&csr, now),
            vec![
                json!("node-csr-a"),
                json!("10m"),
                json!("kubernetes.io/kube-apiserver-client-kubelet"),
                json!("system:bootstrap:abcdef"),
                json!("<none>"),
                json!("Approved,Issued")
            ]
        );
        let pending = json!({"metadata": {"name": "p"}, "spec": {"expirationSeconds": 3600}});
        assert_eq!(certificate_signing_request(&pending, now)[4], json!("60m"));
        assert_eq!(
            certificate_signing_request(&pending, now)[5],
            json!("Pending")
        );
    }
}
