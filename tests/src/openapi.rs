//! Checking a fake's answers against the service's official OpenAPI description (the
//! subsets in `tests/specs/<service>/`, with their source, version and licence): the status is documented, and every field of
//! the body is declared, of its declared type, enum and pattern. A fake that drifts from
//! the service would let Patchbay pass tests that the real service fails.

use std::path::PathBuf;

use serde_json::Value;

/// `tests/specs/<file>`, e.g. `twilio/api_v2010.subset.json`.
pub fn load(file: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("specs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            resolve(spec, spec.pointer(pointer).unwrap_or_else(|| panic!("{reference} resolves")))
        }
        None => schema,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every way `value` departs from `schema`, as `path: problem` lines. Types may be one
/// name or (OpenAPI 3.1) a list of names; `nullable` (3.0) allows null.
pub fn departures(spec: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let schema = resolve(spec, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if value.is_null() {
        let allowed = schema["nullable"] == true || types.contains(&"null");
        return if allowed { vec![] } else { vec![format!("{path}: null but not nullable")] };
    }
    let mut found = Vec::new();
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        found.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let (Some(pattern), Value::String(text)) = (schema["pattern"].as_str(), value)
        && !regex::Regex::new(pattern).expect("a valid pattern").is_match(text)
    {
        found.push(format!("{path}: {text:?} does not match {pattern}"));
    }
    let actual = type_name(value);
    let fits = types.is_empty() || types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
    if !fits {
        found.push(format!("{path}: {value} is not of type {types:?}"));
    }
    match value {
        Value::Object(map) if schema["properties"].is_object() => {
            for (key, field) in map {
                match schema["properties"].get(key) {
                    Some(field_schema) => found.extend(departures(spec, field_schema, field, &format!("{path}.{key}"))),
                    None => found.push(format!("{path}.{key}: not declared")),
                }
            }
            for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(required) {
                    found.push(format!("{path}.{required}: required but missing"));
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                found.extend(departures(spec, &schema["items"], item, &format!("{path}[{index}]")));
            }
        }
        _ => {}
    }
    found
}

/// The problems of one answer to `method template` (`responses` of OpenAPI 3 or Swagger 2).
pub fn problems(spec: &Value, method: &str, template: &str, status: u16, body: &Value) -> Vec<String> {
    let operation = &spec["paths"][template][method];
    assert!(operation.is_object(), "{method} {template} is in the spec");
    let responses = &operation["responses"];
    let Some(response) = responses.get(status.to_string()).or(responses.get("default")) else {
        return vec![format!("{method} {template}: status {status} is not documented")];
    };
    let schema = response.pointer("/content/application~1json/schema").or(response.get("schema"));
    schema.map(|schema| departures(spec, schema, body, "$")).unwrap_or_default()
}

/// Fails unless the answer is one the spec describes.
pub fn conforms(spec: &Value, method: &str, template: &str, status: u16, body: &Value) {
    let problems = problems(spec, method, template, status, body);
    assert!(problems.is_empty(), "{method} {template} answers beyond the spec:\n{}", problems.join("\n"));
}
