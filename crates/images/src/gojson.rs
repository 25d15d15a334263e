//! JSON exactly as Go's `encoding/json` writes agnhost's maps: keys sorted, and `<`, `>`,
//! `&`, U+2028 and U+2029 escaped (Go's HTML-safe default), so responses compare byte for
//! byte with the real image.

use std::fmt::Write;

/// A JSON string literal, Go style.
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal(map[string]string)`.
pub fn object_of_strings(entries: &[(&str, String)]) -> String {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let fields: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}:{}", string(k), string(v)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Go's `json.Marshal(map[string][]string)`.
pub fn object_of_lists(entries: &[(&str, Vec<String>)]) -> String {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    let fields: Vec<String> = sorted
        .iter()
        .map(|(k, values)| {
            let items: Vec<String> = values.iter().map(|v| string(v)).collect();
            format!("{}:[{}]", string(k), items.join(","))
        })
        .collect();
    format!("{{{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            string("a\"b\\c\n<d>&\u{1}\u{8}"),
            r#""a\"b\\c\n\u003cd\u003e\u0026\u0001\b""#
        );
        assert_eq!(string("ünï"), "\"ünï\"");
    }

    #[test]
    fn sorted_maps() {
        assert_eq!(
            object_of_strings(&[("output", "hi\n".into()), ("error", "exit status 1".into())]),
            r#"{"error":"exit status 1","output":"hi\n"}"#
        );
        assert_eq!(
            object_of_lists(&[
                ("responses", vec!["pod-a".into(), "pod-b".into()]),
                ("errors", vec![])
            ]),
            r#"{"errors":[],"responses":["pod-a","pod-b"]}"#
        );
        assert_eq!(object_of_lists(&[]), "{}");
    }
}
