//! Label selectors: requirements, matching, canonical text and `metav1.LabelSelector` objects.

use std::collections::BTreeMap;
use std::fmt;

use kinet_types::ApiError;
use serde_json::{Map, Value};

use crate::label_parse;
use kinet_types::validation::{is_label_value, is_qualified_name};

/// An object's labels, as a selector reads them (`labels.Labels`).
pub trait Labels {
    /// The value of `key`, if the label is set.
    fn label(&self, key: &str) -> Option<&str>;
}

/// `metadata.labels` as JSON; a value that is not a string reads as `""`.
impl Labels for Map<String, Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(|v| v.as_str().unwrap_or_default())
    }
}

/// `metadata.labels` as k8s-openapi types hold them.
impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// No labels at all.
struct NoLabels;

impl Labels for NoLabels {
    fn label(&self, _: &str) -> Option<&str> {
        None
    }
}

/// `labels.SelectorFromSet(set).Matches(labels)`: every label of `set`, with its value (a
/// Service's selector, a nodeSelector, a template's labels). An empty set selects everything.
pub fn set_matches<L: Labels + ?Sized>(set: &BTreeMap<String, String>, labels: &L) -> bool {
    set.iter().all(|(k, v)| labels.label(k) == Some(v.as_str()))
}

/// A requirement operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    Exists,
    DoesNotExist,
}

/// One `key op values` term; a selector is the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

/// Renders a value list as Go's `%#v` of a `[]string` (field.Invalid prints it so).
fn go_string_slice(vals: &[String]) -> String {
    let quoted: Vec<String> = vals.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Joins errors as apimachinery's aggregate does: one bare, several as `[a, b]`, duplicates dropped.
pub(crate) fn aggregate(errs: Vec<String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        1 => seen.pop().unwrap_or_default(),
        _ => format!("[{}]", seen.join(", ")),
    }
}

impl Requirement {
    /// `labels.NewRequirement`: validates key, value count and values. `Err` holds the
    /// aggregated message.
    pub(crate) fn new(key: &str, op: Op, values: Vec<String>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {key:?}: {}",
                key_errs.join("; ")
            ));
        }
        let count_err = match op {
            Op::In | Op::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Op::Equals | Op::DoubleEquals | Op::NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Op::GreaterThan | Op::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(msg) = count_err {
            errs.push(format!(
                "values: Invalid value: {}: {msg}",
                go_string_slice(&values)
            ));
        }
        if matches!(op, Op::GreaterThan | Op::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = is_label_value(v);
            if !v_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {v:?}: {}",
                    v_errs.join("; ")
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key: key.to_string(),
                op,
                values,
            })
        } else {
            Err(aggregate(errs))
        }
    }

    fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let got = labels.label(&self.key);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match (self.op, got) {
            (Op::In | Op::Equals | Op::DoubleEquals, Some(v)) => has(v),
            (Op::In | Op::Equals | Op::DoubleEquals, None) => false,
            (Op::NotIn | Op::NotEquals, Some(v)) => !has(v),
            (Op::NotIn | Op::NotEquals, None) => true,
            (Op::Exists, got) => got.is_some(),
            (Op::DoesNotExist, got) => got.is_none(),
            (Op::GreaterThan | Op::LessThan, Some(v)) => {
                let (Ok(have), [want]) = (v.parse::<i64>(), self.values.as_slice()) else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
            (Op::GreaterThan | Op::LessThan, None) => false,
        }
    }
}

/// The operators of `matchExpressions` and node selector terms, by their API names.
fn set_based_op(name: &str) -> Option<Op> {
    Some(match name {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        "Gt" => Op::GreaterThan,
        "Lt" => Op::LessThan,
        _ => return None,
    })
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op == Op::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.op {
            Op::Equals => "=",
            Op::DoubleEquals => "==",
            Op::NotEquals => "!=",
            Op::In => " in ",
            Op::NotIn => " notin ",
            Op::GreaterThan => ">",
            Op::LessThan => "<",
            Op::Exists | Op::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        // Values print sorted, as apimachinery normalises them.
        let mut values = self.values.clone();
        values.sort();
        if matches!(self.op, Op::In | Op::NotIn) {
            write!(f, "({})", values.join(","))
        } else {
            f.write_str(&values.join(","))
        }
    }
}

/// A parsed label selector: the AND of its requirements, or "nothing" (a null
/// `metav1.LabelSelector`, which selects no object).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    reqs: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// Parses the `labelSelector` query syntax. Errors are 400 BadRequest with apimachinery's text.
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let mut reqs = label_parse::parse(s).map_err(ApiError::bad_request)?;
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            reqs,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` object (`LabelSelectorAsSelector`): null selects nothing,
    /// `{}` everything.
    pub fn from_label_selector(sel: &Value) -> Result<LabelSelector, ApiError> {
        if sel.is_null() {
            return Ok(LabelSelector {
                reqs: Vec::new(),
                nothing: true,
            });
        }
        let mut reqs = Vec::new();
        let bad = |m: String| ApiError::bad_request(m);
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                let v = v.as_str().unwrap_or_default().to_string();
                reqs.push(Requirement::new(k, Op::Equals, vec![v]).map_err(bad)?);
            }
        }
        for expr in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let op_name = expr
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = match set_based_op(op_name) {
                Some(op @ (Op::In | Op::NotIn | Op::Exists | Op::DoesNotExist)) => op,
                _ => {
                    return Err(bad(format!(
                        "{op_name:?} is not a valid label selector operator"
                    )))
                }
            };
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let values = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| {
                    vs.iter()
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default();
            reqs.push(Requirement::new(key, op, values).map_err(bad)?);
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            reqs,
            nothing: false,
        })
    }

    /// The AND of `(key, operator, values)` requirements with the operators of a node
    /// selector term (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`), as the scheduler's
    /// `nodeSelectorRequirementsAsSelector` builds it. `Err` names what is invalid.
    pub fn from_requirements<'a>(
        reqs: impl IntoIterator<Item = (&'a str, &'a str, &'a [String])>,
    ) -> Result<LabelSelector, String> {
        let mut out = Vec::new();
        for (key, op_name, values) in reqs {
            let op = set_based_op(op_name)
                .ok_or_else(|| format!("{op_name:?} is not a valid node selector operator"))?;
            out.push(Requirement::new(key, op, values.to_vec())?);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            reqs: out,
            nothing: false,
        })
    }

    /// Selects every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Whether the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }

    /// Whether an object with these `metadata.labels` (JSON) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        match labels {
            Some(l) => self.matches_labels(l),
            None => self.matches_labels(&NoLabels),
        }
    }

    /// Whether an object with these labels is selected.
    pub fn matches_labels<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reqs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_sets_select_objects_carrying_every_pair() {
        let l = set(&[("app", "web"), ("tier", "front")]);
        assert!(set_matches(&set(&[("app", "web")]), &l));
        assert!(set_matches(&set(&[]), &l));
        assert!(!set_matches(&set(&[("app", "db")]), &l));
        assert!(!set_matches(&set(&[("app", "web"), ("zone", "a")]), &l));
        let json = labels(json!({"app": "web"}));
        assert!(set_matches(&set(&[("app", "web")]), &json));
    }

    #[test]
    fn node_selector_requirements_with_gt_and_lt() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (zones, cores, none) = (v(&["a", "b"]), v(&["4"]), v(&[]));
        let sel = LabelSelector::from_requirements([
            ("zone", "In", zones.as_slice()),
            ("cores", "Gt", cores.as_slice()),
            ("gpu", "DoesNotExist", none.as_slice()),
        ])
        .unwrap();
        assert!(sel.matches_labels(&set(&[("zone", "a"), ("cores", "8")])));
        assert!(!sel.matches_labels(&set(&[("zone", "a"), ("cores", "4")])));
        assert!(!sel.matches_labels(&set(&[("zone", "c"), ("cores", "8")])));
        assert!(!sel.matches_labels(&set(&[("zone", "a"), ("cores", "8"), ("gpu", "1")])));
        let err = LabelSelector::from_requirements([("zone", "Near", none.as_slice())]);
        assert_eq!(
            err,
            Err("\"Near\" is not a valid node selector operator".into())
        );
        assert!(LabelSelector::from_requirements([("cores", "Lt", zones.as_slice())]).is_err());
        // Gt and Lt are node selector operators, not metav1.LabelSelector ones.
        let gt = json!({"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]});
        assert!(LabelSelector::from_label_selector(&gt).is_err());
    }

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn matching_table() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<4", false),
            ("app>1", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(Some(&l)), *want, "{sel}");
        }
        assert!(!LabelSelector::parse("app").unwrap().matches(None));
        assert!(LabelSelector::parse("!app").unwrap().matches(None));
    }

    #[test]
    fn canonical_string() {
        let cases = [
            ("tier=front,app=web", "app=web,tier=front"),
            ("x in (c,a,b),y,!z", "x in (a,b,c),y,!z"),
            ("a notin ( b , c )", "a notin (b,c)"),
            ("a==b,c!=d", "a==b,c!=d"),
            ("x in (foo,,baz)", "x in (,baz,foo)"),
            ("x in ()", "x in ()"),
            ("a=", "a="),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(
                LabelSelector::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn from_object() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!canary,tier in (edge,front)");
        assert!(s.matches(Some(&labels(json!({"app": "web", "tier": "edge"})))));
        assert!(!s.matches(Some(&labels(
            json!({"app": "web", "tier": "edge", "canary": "1"})
        ))));

        let every = LabelSelector::from_label_selector(&json!({})).unwrap();
        assert!(every.is_empty() && every.matches(None));
        let nothing = LabelSelector::from_label_selector(&Value::Null).unwrap();
        assert!(!nothing.is_empty() && !nothing.matches(Some(&labels(json!({"a": "b"})))));

        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
        )
        .unwrap_err();
        assert_eq!(e.message, "\"Foo\" is not a valid label selector operator");
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
        )
        .unwrap_err();
        assert_eq!(e.message, "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty");
        let e = LabelSelector::from_label_selector(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        )
        .unwrap_err();
        assert_eq!(e.message, "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist");
    }
}
