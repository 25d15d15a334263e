use serde_json::{json, Value};

use super::*;

fn smp(kind: &str, current: Value, patch: Value) -> Result<Value, SmpError> {
    let (Value::Object(c), Value::Object(p)) = (current, patch) else { panic!("objects only") };
    merge_value_maps(c, p, schema::for_kind(kind)).map(Value::Object)
}
