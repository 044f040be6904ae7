//! Request-body rules shared by endpoints: JSON content type/parsing, the `user` field, and `inputs` vs the form.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use crate::app_meta::{FORM, FormVar, VarKind};
use crate::json::ApiError;
use crate::pyrepr::{py_str, str_repr, truthy};

/// Lower-cased media type without parameters (werkzeug `request.mimetype`).
pub(crate) fn mimetype(headers: &HeaderMap) -> String {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// werkzeug `request.is_json`.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let mt = mimetype(headers);
    mt == "application/json" || (mt.starts_with("application/") && mt.ends_with("+json"))
}

/// Flask `request.get_json()`: 415 without a JSON content type, 400 when the body does not parse.
pub(crate) fn get_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(body).map_err(|_| ApiError::bad_request())
}

/// Dify's `request.get_json().get("user")`: 500 for non-object JSON, 400 when required and falsy.
pub(crate) fn user_from_json(body: &Value, required: bool) -> Result<Option<String>, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::unknown());
    };
    user_from_value(map.get("user"), required)
}

/// `if not user_id and required: raise ...; user_id = str(user_id)`.
pub(crate) fn user_from_value(v: Option<&Value>, required: bool) -> Result<Option<String>, ApiError> {
    match v {
        Some(v) if truthy(v) => Ok(Some(py_str(v))),
        _ if required => Err(ApiError::invalid_param("Arg user must be provided.")),
        _ => Ok(None),
    }
}

/// `service_api_ns.payload or {}`.
pub(crate) fn payload_or_empty(v: Value) -> Value {
    if truthy(&v) { v } else { Value::Object(Map::new()) }
}

/// Inputs after Dify's `_prepare_user_inputs`, in form order.
pub(crate) struct ValidatedInputs {
    pub values: Vec<(String, Value)>,
}

impl ValidatedInputs {
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_str())
    }

    /// Sum of the characters of every input value (numbers by their JSON text, null as 0).
    pub fn text_len(&self) -> usize {
        self.values.iter().map(|(_, v)| value_len(v)).sum()
    }
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::String(s) => s.chars().count(),
        other => other.to_string().chars().count(),
    }
}

/// Validates `inputs` against the app's `user_input_form`; errors are the `ValueError` texts.
pub(crate) fn validate_inputs(inputs: &Map<String, Value>) -> Result<ValidatedInputs, String> {
    let mut values = Vec::new();
    for var in FORM.iter() {
        let value = validate_var(var, inputs.get(var.variable))?;
        values.push((var.variable.to_string(), value));
    }
    Ok(ValidatedInputs { values })
}

fn validate_var(var: &FormVar, value: Option<&Value>) -> Result<Value, String> {
    let name = var.variable;
    let value = match value {
        None | Some(Value::Null) if var.required => {
            return Err(format!("{name} is required in input form"));
        }
        None | Some(Value::Null) => return Ok(Value::String(var.default.to_string())),
        Some(v) => v,
    };
    match var.kind {
        VarKind::Number => validate_number(name, value),
        _ => {
            let Value::String(s) = value else {
                return Err(format!(
                    "(type '{}') {name} in input form must be a string",
                    var.kind.as_str()
                ));
            };
            validate_text(var, s)
        }
    }
}

fn validate_text(var: &FormVar, s: &str) -> Result<Value, String> {
    let name = var.variable;
    if var.kind == VarKind::Select && !var.options.contains(&s) {
        let opts: Vec<String> = var.options.iter().map(|o| str_repr(o)).collect();
        return Err(format!(
            "{name} in input form must be one of the following: [{}]",
            opts.join(", ")
        ));
    }
    if let Some(max) = var.max_length
        && s.chars().count() > max
    {
        return Err(format!("{name} in input form must be less than {max} characters"));
    }
    Ok(Value::String(s.replace('\0', "")))
}

fn validate_number(name: &str, value: &Value) -> Result<Value, String> {
    let invalid = || format!("{name} in input form must be a valid number");
    match value {
        Value::Number(_) => Ok(value.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => parse_py_number(s.trim()).ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// Python `float(s)` when the text has a dot, else `int(s)`.
fn parse_py_number(s: &str) -> Option<Value> {
    if s.contains('.') {
        let f = s.replace('_', "").parse::<f64>().ok()?;
        return serde_json::Number::from_f64(f).map(Value::Number);
    }
    let digits = s.trim_start_matches(['+', '-']);
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !ok {
        return None;
    }
    let n: i64 = s.replace('_', "").parse().ok()?;
    Some(Value::from(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn inputs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn form_rules() {
        let err = |v| validate_inputs(&inputs(v)).err().unwrap();
        assert_eq!(err(serde_json::json!({})), "topic is required in input form");
        assert_eq!(
            err(serde_json::json!({"topic": 5})),
            "(type 'text-input') topic in input form must be a string"
        );
        assert_eq!(
            err(serde_json::json!({"topic": "x".repeat(49)})),
            "topic in input form must be less than 48 characters"
        );
        assert_eq!(
            err(serde_json::json!({"topic": "t", "tone": "angry"})),
            "tone in input form must be one of the following: ['formal', 'casual']"
        );
        assert_eq!(
            err(serde_json::json!({"topic": "t", "words": "12a"})),
            "words in input form must be a valid number"
        );
        let ok = validate_inputs(&inputs(
            serde_json::json!({"topic": "tea", "words": "120", "x": 1}),
        ))
        .unwrap();
        assert_eq!(ok.values.len(), 4);
        assert_eq!(ok.values[3].1, serde_json::json!(120));
    }
}
