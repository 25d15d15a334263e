//! JSON parsing that notices duplicate object keys, which kube-apiserver's strict decoder reports
//! (`duplicate field "spec.replicas"`) and serde_json silently resolves to the last value.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::strict::{render, Seg};

/// Parses one JSON value (the last of duplicate keys wins, as in Go), with the dotted paths of
/// every duplicate key, in the paths' `spec.containers[0].name` form.
pub fn parse_json_with_duplicates(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut path = Vec::new();
    let mut duplicates = Vec::new();
    let value = Node {
        path: &mut path,
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

struct Node<'a> {
    path: &'a mut Vec<Seg<String>>,
    duplicates: &'a mut Vec<String>,
}

impl Node<'_> {
    fn child(&mut self) -> Node<'_> {
        Node {
            path: self.path,
            duplicates: self.duplicates,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.path.push(Seg::Index(items.len()));
            let item = seq.next_element_seed(self.child());
            self.path.pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // The key rides on the path while its value is parsed, then moves into the map.
            self.path.push(Seg::Key(key));
            let value = map.next_value_seed(self.child());
            let duplicate = matches!(&self.path.last(), Some(Seg::Key(k)) if out.contains_key(k));
            if duplicate {
                self.duplicates.push(render(self.path));
            }
            let Some(Seg::Key(key)) = self.path.pop() else {
                unreachable!("the key pushed above")
            };
            out.insert(key, value?);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_found_with_their_paths() {
        let body =
            br#"{"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "x", "name": "b"}]},
            "metadata": {"labels": {"a": "1", "a": "2"}}, "kind": "Pod"}"#;
        let (v, dups) = parse_json_with_duplicates(body).unwrap();
        assert_eq!(v["spec"]["containers"][0]["name"], "b");
        assert_eq!(v["metadata"]["labels"], json!({"a": "2"}));
        assert_eq!(
            dups,
            vec!["spec.containers[0].name", "metadata.labels.a", "kind"]
        );
    }

    #[test]
    fn same_value_as_serde_json() {
        let body = br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": {"d": []}}"#;
        let (v, dups) = parse_json_with_duplicates(body).unwrap();
        assert_eq!(v, serde_json::from_slice::<Value>(body).unwrap());
        assert!(dups.is_empty());
        assert!(parse_json_with_duplicates(b"{} x").is_err());
        assert!(parse_json_with_duplicates(b"{\"a\": ").is_err());
    }
}
