//! The probe matrix's tables and the verdict explanation.

use super::*;
use crate::{explain, Matrix};

fn nine(c: &Cluster) -> Vec<&Pod> {
    c.pods().collect()
}

#[test]
fn the_expected_table_is_the_upstream_one_and_differences_are_marked() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "deny-ingress",
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
    );
    let mut m = Matrix::expected(&c, &nine(&c), 80, Tcp);
    let want = Reach::all().to("x/*", false);
    for (i, from) in m.pods.iter().enumerate() {
        for (j, to) in m.pods.iter().enumerate() {
            assert_eq!(
                m.expected[i][j],
                want.0[&(from.clone(), to.clone())],
                "{from} -> {to}"
            );
        }
    }
    // Observed: as expected, except y/a reached x/b.
    for i in 0..9 {
        for j in 0..9 {
            if i != j {
                m.observed[i][j] = Some(m.expected[i][j]);
            }
        }
    }
    let (ya, xb) = (3, 1);
    assert_eq!((m.pods[ya].as_str(), m.pods[xb].as_str()), ("y/a", "x/b"));
    m.observed[ya][xb] = Some(true);
    assert_eq!(m.mismatches(), vec![("y/a", "x/b")]);
    let text = m.render();
    assert!(text.contains("Expected (80/tcp):"), "{text}");
    assert!(text.contains("1 of 72 cells differ"), "{text}");
    let comparison = text.split("Comparison").nth(1).unwrap();
    let row = comparison.lines().find(|l| l.starts_with("y/a")).unwrap();
    assert_eq!(
        row.split('\t').skip(1).collect::<Vec<_>>(),
        [".", "X", ".", "-", ".", ".", ".", ".", "."]
    );
}

#[test]
fn why_names_the_rule_that_allowed_and_the_policies_that_isolate() {
    let mut c = model();
    apply(
        &mut c,
        "x",
        "a-from-b",
        json!({"podSelector": pod_is("a"), "ingress": [{"from": [{"podSelector": pod_is("b")}], "ports": [{"port": 80}]}]}),
    );
    let (xa, xb, xc) = (
        c.pod("x", "a").unwrap(),
        c.pod("x", "b").unwrap(),
        c.pod("x", "c").unwrap(),
    );
    let ok = c.verdict(Endpoint::Pod(xb), Endpoint::Pod(xa), 80, Tcp);
    let text = explain(xb, xa, 80, Tcp, &ok);
    assert!(text.contains(": ALLOWED"), "{text}");
    assert!(
        text.contains("ingress: allowed by x/a-from-b ingress[0]"),
        "{text}"
    );
    assert!(
        text.contains("egress: allowed: no policy selects x/b for egress"),
        "{text}"
    );
    let no = c.verdict(Endpoint::Pod(xc), Endpoint::Pod(xa), 80, Tcp);
    let text = explain(xc, xa, 80, Tcp, &no);
    assert!(
        text.contains(
            ": DENIED\n  ingress: x/a is isolated by x/a-from-b, and no rule of it allows this"
        ),
        "{text}"
    );
}
