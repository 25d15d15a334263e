//! Request body decoding with the error texts kube-apiserver gives.
//!
//! kube-apiserver decodes with Go's `encoding/json`, so kubectl users see messages such as
//! `invalid character 'x' looking for beginning of value`. serde_json reports the same failures
//! in its own words; [`go_json_error`] translates the common ones.

use serde_json::Value;

/// Parses a JSON body, with a Go-style message on failure.
pub fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| go_json_error(body, &e))
}

/// Go's name for the JSON type of a value, as in `cannot unmarshal array into ...`.
pub fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Translates a serde_json error into Go `encoding/json`'s wording.
pub fn go_json_error(body: &[u8], err: &serde_json::Error) -> String {
    if err.is_eof() {
        return "unexpected end of JSON input".to_string();
    }
    let offset = byte_offset(body, err.line(), err.column());
    let Some(&byte) = offset.and_then(|o| body.get(o)) else {
        return "unexpected end of JSON input".to_string();
    };
    // serde_json's message without its " at line L column C" suffix.
    let full = err.to_string();
    let msg = full.split(" at line ").next().unwrap_or(&full);
    if msg == "expected ident" {
        if let Some(context) = literal_context(body, offset.unwrap_or(0)) {
            return format!("invalid character {} {context}", go_quote_char(byte));
        }
    }
    let context = match msg {
        "expected `:`" => "after object key",
        "expected `,` or `}`" => "after object key:value pair",
        "expected `,` or `]`" => "after array element",
        "key must be a string" => "looking for beginning of object key string",
        "trailing characters" => "after top-level value",
        "trailing comma" if byte == b'}' => "looking for beginning of object key string",
        m if m.starts_with("control character") || m.starts_with("invalid escape") => {
            "in string literal"
        }
        _ => "looking for beginning of value",
    };
    format!("invalid character {} {context}", go_quote_char(byte))
}

/// Inside `true`, `false` or `null`: `in literal null (expecting 'u')`.
fn literal_context(body: &[u8], offset: usize) -> Option<String> {
    let start = body[..offset]
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |p| p + 1);
    let literal = match body.get(start)? {
        b't' => "true",
        b'f' => "false",
        b'n' => "null",
        _ => return None,
    };
    let expected = *literal.as_bytes().get(offset - start)?;
    Some(format!(
        "in literal {literal} (expecting {})",
        go_quote_char(expected)
    ))
}

/// serde_json reports 1-based line and column of the offending byte.
fn byte_offset(body: &[u8], line: usize, column: usize) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let mut start = 0;
    for _ in 1..line {
        start += body[start..].iter().position(|&b| b == b'\n')? + 1;
    }
    Some(start + column - 1)
}

/// Go's `quoteChar`: `'x'`, with `'\''` and `'"'` special-cased.
fn go_quote_char(b: u8) -> String {
    match b {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        b if b.is_ascii_graphic() || b == b' ' => format!("'{}'", b as char),
        b => format!("'\\x{b:02x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_messages() {
        let cases: &[(&str, &str)] = &[
            ("", "unexpected end of JSON input"),
            ("{", "unexpected end of JSON input"),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\":2}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            ("{} x", "invalid character 'x' after top-level value"),
            (
                "nope",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            (
                "[tru]",
                "invalid character ']' in literal true (expecting 'e')",
            ),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            (
                "{\n  \"a\": 'b'\n}",
                "invalid character '\\'' looking for beginning of value",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_json(body.as_bytes()).unwrap_err(),
                *want,
                "body {body:?}"
            );
        }
    }

    #[test]
    fn valid_json_parses() {
        assert_eq!(
            parse_json(b" {\"a\": [1]} ").unwrap(),
            serde_json::json!({"a": [1]})
        );
    }
}
