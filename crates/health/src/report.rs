//! The text and status of a health report, from check outcomes. Pure.

use std::fmt::Write as _;

/// What one check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Skipped through `?exclude=`.
    Excluded,
    /// Failed, with the reason (logged, and shown only on the check's own path).
    Failed(String),
}

/// The parts of the query string a health endpoint reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub verbose: bool,
    pub exclude: Vec<String>,
}

impl Query {
    /// Parses `verbose` (present with any value) and every `exclude=`.
    pub fn parse(query: Option<&str>) -> Query {
        let mut q = Query::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "verbose" => q.verbose = true,
                "exclude" => q.exclude.push(v.into_owned()),
                _ => {}
            }
        }
        q
    }
}

/// `/readyz` is `("readyz", None)`, `/readyz/etcd` is `("readyz", Some("etcd"))` when
/// `endpoints` has `readyz`; check names may contain `/` (kube-apiserver's
/// `poststarthook/...`).
pub fn split_path<'a>(path: &'a str, endpoints: &[&str]) -> Option<(&'a str, Option<&'a str>)> {
    let rest = path.strip_prefix('/')?;
    let (endpoint, check) = match rest.split_once('/') {
        Some((endpoint, check)) => (endpoint, Some(check)),
        None => (rest, None),
    };
    endpoints.contains(&endpoint).then_some((endpoint, check))
}

/// An HTTP answer: status and `text/plain` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub status: u16,
    pub body: String,
}

/// The report of `/<endpoint>` for the checks' outcomes, in registration order.
/// `unmatched` are excluded names no check has, sorted.
pub fn render(
    endpoint: &str,
    outcomes: &[(String, Outcome)],
    unmatched: &[String],
    verbose: bool,
) -> Report {
    let mut lines = String::new();
    let mut failed = false;
    for (name, outcome) in outcomes {
        let _ = match outcome {
            Outcome::Ok => writeln!(lines, "[+]{name} ok"),
            Outcome::Excluded => writeln!(lines, "[+]{name} excluded: ok"),
            Outcome::Failed(_) => {
                failed = true;
                // The root path is public: the reason is for the log and the check's own path.
                writeln!(lines, "[-]{name} failed: reason withheld")
            }
        };
    }
    if !unmatched.is_empty() {
        let quoted: Vec<String> = unmatched.iter().map(|n| format!("{n:?}")).collect();
        let _ = writeln!(
            lines,
            "warn: some health checks cannot be excluded: no matches for {}",
            quoted.join(",")
        );
    }
    if failed {
        // Always verbose on failure; Go's http.Error appends the newline.
        return Report {
            status: 500,
            body: format!("{lines}{endpoint} check failed\n"),
        };
    }
    if !verbose {
        return Report {
            status: 200,
            body: "ok".into(),
        };
    }
    Report {
        status: 200,
        body: format!("{lines}{endpoint} check passed\n"),
    }
}

/// The report of `/<endpoint>/<name>` for that check's result.
pub fn render_one(result: &Result<(), String>) -> Report {
    match result {
        Ok(()) => Report {
            status: 200,
            body: "ok".into(),
        },
        Err(reason) => Report {
            status: 500,
            body: format!("internal server error: {reason}\n"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(list: &[(&str, Outcome)]) -> Vec<(String, Outcome)> {
        list.iter()
            .map(|(n, o)| (n.to_string(), o.clone()))
            .collect()
    }

    #[test]
    fn all_passing_is_a_bare_ok_unless_verbose() {
        let o = outcomes(&[("ping", Outcome::Ok), ("etcd", Outcome::Ok)]);
        assert_eq!(
            render("readyz", &o, &[], false),
            Report {
                status: 200,
                body: "ok".into()
            }
        );
        assert_eq!(
            render("readyz", &o, &[], true).body,
            "[+]ping ok\n[+]etcd ok\nreadyz check passed\n"
        );
    }

    #[test]
    fn a_failure_is_500_and_verbose_naming_it_without_its_reason() {
        let o = outcomes(&[
            ("ping", Outcome::Ok),
            ("etcd", Outcome::Failed("writer thread gone".into())),
        ]);
        let r = render("livez", &o, &[], false);
        assert_eq!(r.status, 500);
        assert_eq!(
            r.body,
            "[+]ping ok\n[-]etcd failed: reason withheld\nlivez check failed\n"
        );
    }

    #[test]
    fn excluded_and_unmatched_names_are_listed() {
        let o = outcomes(&[("ping", Outcome::Ok), ("etcd", Outcome::Excluded)]);
        let r = render("healthz", &o, &["nope".into(), "other".into()], true);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            "[+]ping ok\n[+]etcd excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\",\"other\"\n\
             healthz check passed\n"
        );
    }

    #[test]
    fn one_check_shows_its_reason() {
        assert_eq!(render_one(&Ok(())).body, "ok");
        assert_eq!(
            render_one(&Err("no commit".into())),
            Report {
                status: 500,
                body: "internal server error: no commit\n".into()
            }
        );
    }

    #[test]
    fn health_paths() {
        let e = ["healthz", "livez", "readyz"];
        assert_eq!(split_path("/readyz", &e), Some(("readyz", None)));
        assert_eq!(split_path("/livez/etcd", &e), Some(("livez", Some("etcd"))));
        assert_eq!(
            split_path("/healthz/poststarthook/x", &e),
            Some(("healthz", Some("poststarthook/x")))
        );
        assert_eq!(split_path("/readyz/", &e), Some(("readyz", Some(""))));
        assert_eq!(split_path("/api", &e), None);
        assert_eq!(split_path("/readyzz", &e), None);
    }

    #[test]
    fn query_reads_verbose_and_every_exclude() {
        assert_eq!(Query::parse(None), Query::default());
        assert_eq!(
            Query::parse(Some("verbose&exclude=etcd&exclude=log&other=1")),
            Query {
                verbose: true,
                exclude: vec!["etcd".into(), "log".into()]
            }
        );
        assert!(Query::parse(Some("verbose=false")).verbose);
    }
}
