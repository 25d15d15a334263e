//! CEL validation rules (`x-kubernetes-validations`), as apiextensions-apiserver applies them:
//! checked when a definition is written, then evaluated at each schema node an object has, with
//! `self` (and, in transition rules, `oldSelf` where the old object has the same node), on create
//! and update. Failures carry the rule's message, messageExpression, reason and fieldPath.
//!
//! Not done: cost estimates and budgets, ratcheting of unchanged values, `optionalOldSelf`, and
//! the type checker's undefined-field errors (a misspelled field fails when evaluated, not when
//! compiled).

mod check;
mod compile;
mod convert;
mod library;

use kinet_types::FieldError;
use serde_json::Value;

pub use check::check_definition;

use crate::path::{child, index};

/// One rule as written.
#[derive(Debug)]
struct Source {
    rule: String,
    message: String,
    message_expression: String,
    reason: Option<String>,
    field_path: String,
}

impl Source {
    fn read(v: &Value) -> Source {
        let text = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        Source {
            rule: text("rule"),
            message: text("message"),
            message_expression: text("messageExpression"),
            reason: v["reason"].as_str().map(str::to_string),
            field_path: text("fieldPath"),
        }
    }

    /// How kube-apiserver prints the rule in an error: Go's `%#v` of a ValidationRule. A set
    /// reason is a pointer, which Go prints as an address that differs each run; a fixed one
    /// stands in for it.
    fn go(&self) -> String {
        let reason = match &self.reason {
            Some(_) => "(*apiextensions.FieldValueErrorReason)(0xc000000000)",
            None => "(*apiextensions.FieldValueErrorReason)(nil)",
        };
        format!(
            "apiextensions.ValidationRule{{Rule:{:?}, Message:{:?}, MessageExpression:{:?}, Reason:{reason}, FieldPath:{:?}, OptionalOldSelf:(*bool)(nil)}}",
            self.rule, self.message, self.message_expression, self.field_path
        )
    }

    /// The message of a failure: the rule's own, or the rule itself.
    fn message_or_default(&self) -> String {
        match self.message.trim() {
            "" => format!("failed rule: {}", self.rule.trim()),
            m => m.to_string(),
        }
    }

    /// What an evaluation error names the rule by.
    fn error_string(&self) -> &str {
        match self.message.trim() {
            "" => self.rule.trim(),
            m => m,
        }
    }
}

fn message_program(source: &Source) -> Option<Result<compile::Compiled, String>> {
    let text = source.message_expression.trim();
    (!text.is_empty()).then(|| compile::compile(text))
}

/// The steps of a rule's fieldPath (`.spec.x['a.b']`), or none if it has another shape.
fn field_path_steps(path: &str) -> Option<Vec<String>> {
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("['") {
            let (name, tail) = after.split_once("']")?;
            steps.push(name.to_string());
            rest = tail;
        } else {
            let after = rest.strip_prefix('.')?;
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return None;
            }
            steps.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    (!steps.is_empty()).then_some(steps)
}

/// The field a rule's fieldPath names under `schema`, as the error's path suffix.
fn target(schema: &Value, field_path: &str) -> Option<String> {
    let steps = field_path_steps(field_path)?;
    let mut node = schema;
    for step in &steps {
        node = node["properties"]
            .get(step)
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
    }
    Some(steps.join("."))
}

/// A compiled rule.
#[derive(Debug)]
struct Rule {
    source: Source,
    program: Result<compile::Compiled, String>,
    message: Option<Result<compile::Compiled, String>>,
}

/// The compiled rules of a schema, in a tree shaped like it that holds only the nodes with
/// rules at or under them.
#[derive(Debug, Default)]
pub struct Rules {
    root: Option<Node>,
}

#[derive(Debug)]
struct Node {
    /// The node's schema, kept where it has rules: it types `self`.
    schema: Value,
    rules: Vec<Rule>,
    properties: Vec<(String, Node)>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
    /// The keys of an `x-kubernetes-list-type: map` list: how its items meet their old selves.
    map_keys: Option<Vec<String>>,
}

impl Node {
    fn build(schema: &Value) -> Option<Node> {
        let rules: Vec<Rule> = schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let source = Source::read(r);
                Rule {
                    program: compile::compile(&source.rule),
                    message: message_program(&source),
                    source,
                }
            })
            .collect();
        let properties: Vec<(String, Node)> = schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(name, sub)| Some((name.clone(), Node::build(sub)?)))
            .collect();
        let sub = |name: &str| {
            schema
                .get(name)
                .filter(|s| s.is_object())
                .and_then(Node::build)
                .map(Box::new)
        };
        let (additional, items) = (sub("additionalProperties"), sub("items"));
        if rules.is_empty() && properties.is_empty() && additional.is_none() && items.is_none() {
            return None;
        }
        let map_keys = (schema["x-kubernetes-list-type"] == "map").then(|| {
            schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        });
        Some(Node {
            map_keys,
            schema: if rules.is_empty() {
                Value::Null
            } else {
                schema.clone()
            },
            rules,
            properties,
            additional,
            items,
        })
    }
}

impl Rules {
    pub fn new(schema: &Value) -> Rules {
        Rules {
            root: Node::build(schema),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Every rule `obj` breaks; transition rules only where `old` has the same node.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(root) = &self.root {
            eval(root, obj, old, "", true, &mut errors);
        }
        errors
    }
}

fn eval(
    node: &Node,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    resource: bool,
    errors: &mut Vec<FieldError>,
) {
    if v.is_null() {
        return;
    }
    if !node.rules.is_empty() {
        let this = convert::to_cel(&node.schema, v, resource);
        let before = old.map(|o| convert::to_cel(&node.schema, o, resource));
        for rule in &node.rules {
            run(rule, node, &this, before.as_ref(), path, errors);
        }
    }
    match v {
        Value::Object(fields) => {
            for (name, sub) in &node.properties {
                if let Some(value) = fields.get(name) {
                    let old = old.and_then(|o| o.get(name));
                    eval(sub, value, old, &child(path, name), false, errors);
                }
            }
            if let Some(sub) = &node.additional {
                // Map entries are keys of their path, as upstream's `fldPath.Key(k)`.
                for (name, value) in fields {
                    let old = old.and_then(|o| o.get(name));
                    eval(sub, value, old, &format!("{path}[{name}]"), false, errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = &node.items {
                for (i, item) in items.iter().enumerate() {
                    let old = old.and_then(|o| correlate(node.map_keys.as_deref(), item, o));
                    eval(sub, item, old, &index(path, i), false, errors);
                }
            }
        }
        _ => {}
    }
}

/// The old item an item of a list is compared with: only map lists correlate, by their keys.
fn correlate<'a>(keys: Option<&[String]>, item: &Value, old: &'a Value) -> Option<&'a Value> {
    let keys = keys?;
    old.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(k) == item.get(k)))
}

/// The path an error is reported at: the node's, then the rule's fieldPath under it. The root
/// is a nil path, as upstream's validator is called with one.
fn at(path: &str, suffix: Option<&str>) -> String {
    match (path, suffix.filter(|s| !s.is_empty())) {
        ("", None) => "<nil>".to_string(),
        (p, None) => p.to_string(),
        (p, Some(s)) => child(p, s),
    }
}

fn run(
    rule: &Rule,
    node: &Node,
    this: &cel::Value,
    before: Option<&cel::Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let ty = node.schema["type"].as_str().unwrap_or_default();
    let compiled = match &rule.program {
        Ok(c) => c,
        Err(e) => {
            errors.push(FieldError::invalid(
                at(path, None),
                ty,
                &format!("rule compile error: {e}"),
            ));
            return;
        }
    };
    if compiled.uses_old_self && before.is_none() {
        return;
    }
    let outcome = evaluate(compiled, this, before);
    let source = &rule.source;
    match outcome {
        Ok(cel::Value::Bool(true)) => {}
        Ok(cel::Value::Bool(false)) => {
            let suffix = target(&node.schema, &source.field_path);
            let here = at(path, suffix.as_deref());
            let message = rule
                .message
                .as_ref()
                .and_then(|m| m.as_ref().ok())
                .and_then(|m| custom_message(m, this, before))
                .unwrap_or_else(|| source.message_or_default());
            errors.push(match source.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(here, &message),
                Some("FieldValueRequired") => FieldError::required(here, &message),
                Some("FieldValueDuplicate") => FieldError::duplicate(here, ty),
                _ => FieldError::invalid(here, ty, &message),
            });
        }
        Ok(_) => errors.push(FieldError::invalid(
            at(path, None),
            ty,
            &format!(
                "rule did not evaluate to a bool evaluating rule: {}",
                source.error_string()
            ),
        )),
        Err(e) => errors.push(FieldError::invalid(
            at(path, None),
            ty,
            &evaluation_error(&e, source.error_string()),
        )),
    }
}

fn evaluate(
    compiled: &compile::Compiled,
    this: &cel::Value,
    before: Option<&cel::Value>,
) -> Result<cel::Value, cel::ExecutionError> {
    let mut context = cel::Context::with_env(compile::environment());
    context.add_variable_from_value("self", this.clone());
    if let Some(old) = before {
        context.add_variable_from_value("oldSelf", old.clone());
    }
    compiled.program.execute(&context)
}

/// A messageExpression's text, when it gives one line of text.
fn custom_message(
    compiled: &compile::Compiled,
    this: &cel::Value,
    before: Option<&cel::Value>,
) -> Option<String> {
    match evaluate(compiled, this, before) {
        Ok(cel::Value::String(s)) if !s.trim().is_empty() && !s.contains(['\n', '\r']) => {
            Some(s.trim().to_string())
        }
        _ => None,
    }
}

/// cel-go's runtime error texts, in kube-apiserver's sentence.
fn evaluation_error(e: &cel::ExecutionError, rule: &str) -> String {
    use cel::ExecutionError as E;
    match e {
        E::NoSuchOverload(_) | E::UnexpectedType { .. } | E::ValuesNotComparable(..) => format!(
            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule}"
        ),
        E::NoSuchKey(key) => format!("no such key: {key} evaluating rule: {rule}"),
        E::DivisionByZero(_) | E::RemainderByZero(_) => {
            format!("division by zero evaluating rule: {rule}")
        }
        other => format!("{other} evaluating rule: {rule}"),
    }
}

#[cfg(test)]
mod tests;
