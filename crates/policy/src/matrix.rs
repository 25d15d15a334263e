//! The truth table of a probe run, in the style of the upstream e2e suite: every pod to every
//! pod on one port, what the model expects beside what was observed, differing cells marked;
//! and one verdict explained in words.

use std::fmt::Write;

use crate::input::{Cluster, Pod, Proto};
use crate::model::{Allow, Endpoint, Verdict};
use crate::policy::Direction;

/// One port's truth table over `pods` (rows: from, columns: to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// `namespace/name` of each pod, rows and columns in the same order.
    pub pods: Vec<String>,
    pub port: u16,
    pub proto: Proto,
    pub expected: Vec<Vec<bool>>,
    /// What the probes saw; `None` for a cell not probed (a pod to itself).
    pub observed: Vec<Vec<Option<bool>>>,
}

impl Matrix {
    /// The model's expectations for `pods`, nothing observed yet.
    pub fn expected(cluster: &Cluster, pods: &[&Pod], port: u16, proto: Proto) -> Matrix {
        let expected = pods
            .iter()
            .map(|from| {
                pods.iter()
                    .map(|to| {
                        cluster
                            .verdict(Endpoint::Pod(from), Endpoint::Pod(to), port, proto)
                            .is_allowed()
                    })
                    .collect()
            })
            .collect();
        Matrix {
            pods: pods
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
            port,
            proto,
            expected,
            observed: vec![vec![None; pods.len()]; pods.len()],
        }
    }

    /// Cells probed whose outcome differs from the model, as `(from, to)`.
    pub fn mismatches(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for (i, row) in self.observed.iter().enumerate() {
            for (j, seen) in row.iter().enumerate() {
                if seen.is_some_and(|s| s != self.expected[i][j]) {
                    out.push((self.pods[i].as_str(), self.pods[j].as_str()));
                }
            }
        }
        out
    }

    /// Expected, observed and comparison tables: `.` connects, `X` does not, `-` not probed;
    /// in the comparison `.` agrees and `X` differs.
    pub fn render(&self) -> String {
        let expected = |i: usize, j: usize| mark(Some(self.expected[i][j]));
        let observed = |i: usize, j: usize| mark(self.observed[i][j]);
        let compare = |i: usize, j: usize| match self.observed[i][j] {
            None => '-',
            Some(s) if s == self.expected[i][j] => '.',
            Some(_) => 'X',
        };
        let mut out = String::new();
        let what = format!("{}/{}", self.port, self.proto);
        let _ = writeln!(out, "Expected ({what}):");
        self.table(&mut out, expected);
        let _ = writeln!(out, "\nObserved ({what}):");
        self.table(&mut out, observed);
        let _ = writeln!(out, "\nComparison ({what}, X = differs):");
        self.table(&mut out, compare);
        let wrong = self.mismatches().len();
        let _ = writeln!(out, "\n{wrong} of {} cells differ", self.probed());
        out
    }

    fn probed(&self) -> usize {
        self.observed
            .iter()
            .flatten()
            .filter(|c| c.is_some())
            .count()
    }

    fn table(&self, out: &mut String, cell: impl Fn(usize, usize) -> char) {
        let width = self.pods.iter().map(String::len).max().unwrap_or(1);
        let _ = write!(out, "{:width$}", "-");
        for p in &self.pods {
            let _ = write!(out, "\t{p}");
        }
        out.push('\n');
        for (i, from) in self.pods.iter().enumerate() {
            let _ = write!(out, "{from:width$}");
            for j in 0..self.pods.len() {
                let _ = write!(out, "\t{}", cell(i, j));
            }
            out.push('\n');
        }
    }
}

fn mark(c: Option<bool>) -> char {
    match c {
        Some(true) => '.',
        Some(false) => 'X',
        None => '-',
    }
}

/// The verdict in words, naming the policy and rule that decided each direction.
pub fn explain(from: &Pod, to: &Pod, port: u16, proto: Proto, v: &Verdict) -> String {
    let conn = format!(
        "{}/{} ({}) -> {}/{} ({}) {port}/{proto}",
        from.namespace, from.name, from.ip, to.namespace, to.name, to.ip
    );
    let side = |dir: &str, who: &Pod, a: &Allow| match a {
        Allow::NotIsolated => format!(
            "  {dir}: allowed: no policy selects {}/{} for {dir}",
            who.namespace, who.name
        ),
        Allow::Rule(r) => format!("  {dir}: allowed by {r}"),
        Allow::OwnNode => format!("  {dir}: allowed: traffic from the pod's own node"),
    };
    match v {
        Verdict::Allowed { egress, ingress } => format!(
            "{conn}: ALLOWED\n{}\n{}\n",
            side("egress", from, egress),
            side("ingress", to, ingress)
        ),
        Verdict::Denied {
            direction,
            isolated_by,
        } => {
            let who = match direction {
                Direction::Egress => from,
                Direction::Ingress => to,
            };
            let names: Vec<String> = isolated_by.iter().map(|p| p.to_string()).collect();
            format!(
                "{conn}: DENIED\n  {}: {}/{} is isolated by {}, and no rule of {} allows this\n",
                direction.as_str(),
                who.namespace,
                who.name,
                names.join(", "),
                if names.len() == 1 { "it" } else { "them" }
            )
        }
    }
}
