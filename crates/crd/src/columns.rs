//! `additionalPrinterColumns`: Table columns and cells for custom resources, as
//! kube-apiserver's CRD table convertor computes them with kubectl's JSONPath subset
//! (`.a.b`, `[n]`, `[*]`, `[?(@.k=="v")]`).

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One declared column.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl PrinterColumn {
    /// A version's columns; kube-apiserver's default (an Age column) when it declares none.
    pub fn list(declared: &Value) -> Vec<PrinterColumn> {
        let text = |c: &Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
        let columns: Vec<PrinterColumn> = declared
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: text(c, "name"),
                type_: text(c, "type"),
                format: text(c, "format"),
                description: text(c, "description"),
                priority: c["priority"].as_i64().unwrap_or(0),
                json_path: text(c, "jsonPath"),
            })
            .collect();
        if !columns.is_empty() {
            return columns;
        }
        vec![PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }]
    }
}

/// The Table's column definitions: Name, then the declared ones.
pub fn definitions(columns: &[PrinterColumn]) -> Vec<Value> {
    let name = json!({"name": "Name", "type": "string", "format": "name",
        "description": kinet_printers::NAME_DOC, "priority": 0});
    std::iter::once(name)
        .chain(columns.iter().map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format,
                "description": c.description, "priority": c.priority})
        }))
        .collect()
}

/// One object's cells: its name, then each column's first JSONPath result (null when none).
pub fn cells(columns: &[PrinterColumn], obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = obj["metadata"]["name"].clone();
    std::iter::once(name)
        .chain(columns.iter().map(|c| {
            let Some(value) = find(obj, &c.json_path).into_iter().next() else {
                return Value::Null;
            };
            match (c.type_.as_str(), value) {
                ("date", Value::String(t)) => json!(kinet_printers::human_age(t, now)),
                ("string", Value::String(s)) => json!(s),
                ("string", other) => json!(other.to_string()),
                (_, other) => other.clone(),
            }
        }))
        .collect()
}

/// One step of a parsed path.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    /// `[?(@.key=="value")]`.
    Filter(Vec<String>, Value),
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('$').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Field(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = &r[..end];
            rest = &r[end + 1..];
            steps.push(if inner == "*" {
                Step::All
            } else if let Some(cond) = inner.strip_prefix("?(@").and_then(|c| c.strip_suffix(')')) {
                let (key, value) = cond.split_once("==")?;
                let key: Vec<String> = key
                    .trim()
                    .trim_start_matches('.')
                    .split('.')
                    .map(str::to_string)
                    .collect();
                let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
                Step::Filter(key, json!(value))
            } else if let Ok(i) = inner.parse() {
                Step::Index(i)
            } else {
                Step::Field(inner.trim_matches(|c| c == '"' || c == '\'').to_string())
            });
        } else {
            return None;
        }
    }
    Some(steps)
}

/// Every value `path` selects in `obj`, in order.
pub fn find<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let Some(steps) = parse(path) else {
        return Vec::new();
    };
    let mut current = vec![obj];
    for step in &steps {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match step {
                    Step::Field(f) => v.get(f).into_iter().collect(),
                    Step::Index(i) => v.get(*i).into_iter().collect(),
                    Step::All => match v {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(m) => m.values().collect(),
                        _ => Vec::new(),
                    },
                    Step::Filter(key, want) => v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|item| key.iter().try_fold(*item, |at, k| at.get(k)) == Some(want))
                        .collect(),
                }
            })
            .collect();
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Value {
        json!({"metadata": {"name": "gw", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"gatewayClassName": "kinet", "listeners": [{"port": 80}, {"port": 443}]},
            "status": {"addresses": [{"value": "10.0.0.1"}, {"value": "10.0.0.2"}],
                "conditions": [{"type": "Accepted", "status": "True"},
                               {"type": "Programmed", "status": "False"}]}})
    }

    #[test]
    fn json_paths() {
        let gw = gateway();
        assert_eq!(find(&gw, ".spec.gatewayClassName"), [&json!("kinet")]);
        assert_eq!(find(&gw, ".spec.listeners[1].port"), [&json!(443)]);
        assert_eq!(find(&gw, ".status.addresses[*].value").len(), 2);
        assert_eq!(
            find(&gw, r#".status.conditions[?(@.type=="Programmed")].status"#),
            [&json!("False")]
        );
        assert!(find(&gw, ".spec.missing").is_empty());
    }

    #[test]
    fn cells_follow_the_declared_types() {
        let columns = PrinterColumn::list(&json!([
            {"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"},
            {"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"},
            {"name": "Programmed", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"},
            {"name": "Listeners", "type": "string", "jsonPath": ".spec.listeners", "priority": 1},
            {"name": "Missing", "type": "integer", "jsonPath": ".spec.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]));
        let now = "2026-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(
            cells(&columns, &gateway(), now),
            [
                json!("gw"),
                json!("kinet"),
                json!("10.0.0.1"),
                json!("False"),
                json!(r#"[{"port":80},{"port":443}]"#),
                Value::Null,
                json!("5m")
            ]
        );
        let defs = definitions(&columns);
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[4]["priority"], 1);
    }

    #[test]
    fn no_declared_columns_means_age() {
        let cols = PrinterColumn::list(&Value::Null);
        assert_eq!(cols.len(), 1);
        assert_eq!(
            (cols[0].name.as_str(), cols[0].type_.as_str()),
            ("Age", "date")
        );
    }
}
