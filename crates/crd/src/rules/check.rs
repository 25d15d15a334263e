//! A definition's rules, checked as kube-apiserver checks them when the definition is written:
//! the rule compiles, its message, messageExpression, reason and fieldPath are well formed, and
//! `oldSelf` is not used where items have no old selves.

use kinet_types::FieldError;
use serde_json::Value;

use super::{compile, message_program, target, Source};
use crate::path::{child, index};

const REASONS: &[&str] = &[
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// The rules a definition's schema declares, at every node, checked as kube-apiserver checks
/// them when the definition is written. `path` is the schema's field path.
pub fn check_definition(schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    check_node(schema, path, None, errors);
}

/// `within` is the nearest enclosing list whose items have no old selves (not a map list).
fn check_node(schema: &Value, path: &str, within: Option<&str>, errors: &mut Vec<FieldError>) {
    for (i, rule) in schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let here = index(&child(path, "x-kubernetes-validations"), i);
        check_rule(schema, &Source::read(rule), &here, within, errors);
    }
    for (name, sub) in schema["properties"].as_object().into_iter().flatten() {
        check_node(sub, &format!("{path}.properties[{name}]"), within, errors);
    }
    if let Some(sub) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        check_node(sub, &child(path, "additionalProperties"), within, errors);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        let within = match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => within,
            _ => within.or(Some(path)),
        };
        check_node(items, &child(path, "items"), within, errors);
    }
}

fn check_rule(
    schema: &Value,
    source: &Source,
    here: &str,
    within: Option<&str>,
    errors: &mut Vec<FieldError>,
) {
    check_text(source, here, errors);
    if !source.field_path.trim().is_empty() && target(schema, &source.field_path).is_none() {
        errors.push(FieldError::invalid(
            child(here, "fieldPath"),
            source.field_path.as_str(),
            "fieldPath must be a valid path: does not refer to a valid field",
        ));
    }
    if source.rule.trim().is_empty() {
        errors.push(FieldError::required(
            child(here, "rule"),
            "rule is not specified",
        ));
    } else {
        match compile::compile(&source.rule) {
            Err(detail) => errors.push(FieldError::invalid_shown(
                child(here, "rule"),
                source.go(),
                &detail,
            )),
            Ok(c) if c.uses_old_self => {
                if let Some(list) = within {
                    errors.push(FieldError::invalid(
                        child(here, "rule"),
                        source.rule.as_str(),
                        &format!("oldSelf cannot be used on the uncorrelatable portion of the schema within {list}"),
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    if let Some(Err(detail)) = message_program(source) {
        errors.push(FieldError::invalid_shown(
            child(here, "messageExpression"),
            source.go(),
            &format!("messageExpression {detail}"),
        ));
    }
}

fn check_text(source: &Source, here: &str, errors: &mut Vec<FieldError>) {
    let lines = |s: &str| s.contains(['\n', '\r']);
    let message = source.message.trim();
    if !source.message.is_empty() && message.is_empty() {
        errors.push(FieldError::invalid(
            child(here, "message"),
            source.message.as_str(),
            "message must be non-empty if specified",
        ));
    } else if lines(message) {
        errors.push(FieldError::invalid(
            child(here, "message"),
            source.message.as_str(),
            "message must not contain line breaks",
        ));
    } else if lines(source.rule.trim()) && message.is_empty() {
        errors.push(FieldError::required(
            child(here, "message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    if !source.message_expression.is_empty() && source.message_expression.trim().is_empty() {
        errors.push(FieldError::required(
            child(here, "messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    if let Some(reason) = source.reason.as_deref().filter(|r| !REASONS.contains(r)) {
        errors.push(FieldError::not_supported(
            child(here, "reason"),
            reason,
            REASONS,
        ));
    }
}
