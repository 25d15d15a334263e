//! Go's `encoding/json` semantics for `null`, as a serde `Deserializer` over a JSON value.
//!
//! Go decodes `null` into a pointer, slice, map or interface as nil and leaves every other field
//! alone; a `null` map value or array element becomes the element type's zero value (so
//! `{"selector": {"a": null}}` stores `"a": ""`). serde refuses `null` where a `String` or a
//! struct is expected. This wrapper gives the typed decoder Go's answers: `None` for optional
//! fields and the zero value (`""`, `0`, `false`, empty list or object) everywhere else.

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Error, Map, Value};

/// A JSON value decoded with Go's null rules.
pub struct GoValue<'a>(pub &'a Value);

struct Seq<'a>(std::slice::Iter<'a, Value>);

struct Fields<'a> {
    iter: serde_json::map::Iter<'a>,
    value: Option<&'a Value>,
}

const EMPTY: &[Value] = &[];

fn empty_map() -> &'static Map<String, Value> {
    static EMPTY_MAP: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    EMPTY_MAP.get_or_init(Map::new)
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(GoValue(v)))
            .transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

impl<'de> MapAccess<'de> for Fields<'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        let key: de::value::StrDeserializer<'_, Error> = k.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value requested before key"))?;
        seed.deserialize(GoValue(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

fn fields(m: &Map<String, Value>) -> Fields<'_> {
    Fields {
        iter: m.iter(),
        value: None,
    }
}

impl<'de> GoValue<'de> {
    /// Containers are walked by this wrapper so that their children get Go's rules too;
    /// scalars go to serde_json's own deserializer (and its error texts).
    fn containers_or<V: Visitor<'de>>(
        self,
        visitor: V,
        scalar: impl FnOnce(&'de Value, V) -> Result<V::Value, Error>,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(m) => visitor.visit_map(fields(m)),
            v => scalar(v, visitor),
        }
    }
}

/// Null becomes `$zero`; anything else is decoded by serde_json's `$method`.
macro_rules! zero_on_null {
    ($($method:ident => $visit:ident($zero:expr)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.$visit($zero),
                _ => self.containers_or(visitor, |v, visitor| v.$method(visitor)),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for GoValue<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.containers_or(visitor, |v, visitor| v.deserialize_any(visitor))
    }

    zero_on_null! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_str(""),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_str(""),
        deserialize_byte_buf => visit_str(""),
        deserialize_seq => visit_seq(Seq(EMPTY.iter())),
        deserialize_map => visit_map(fields(empty_map())),
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_unit(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.0.deserialize_identifier(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, Service};
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn decode<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
        T::deserialize(GoValue(&v))
    }

    #[test]
    fn null_map_values_and_required_fields_become_zero() {
        let svc: Service =
            decode(json!({"spec": {"selector": {"a": null, "b": "x"}, "clusterIP": null}}))
                .unwrap();
        let spec = svc.spec.unwrap();
        let selector = spec.selector.unwrap();
        assert_eq!(selector["a"], "");
        assert_eq!(selector["b"], "x");
        assert_eq!(spec.cluster_ip, None);
        let c: Container = decode(json!({"name": null, "args": [null, "x"]})).unwrap();
        assert_eq!(c.name, "");
        assert_eq!(c.args.unwrap(), vec!["".to_string(), "x".to_string()]);
    }

    #[test]
    fn type_errors_keep_serde_json_wording() {
        let e = decode::<Container>(json!({"name": 5})).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
        let e = decode::<Container>(json!({"args": {"a": 1}})).unwrap_err();
        assert!(e.to_string().contains("expected a sequence"), "{e}");
    }
}
