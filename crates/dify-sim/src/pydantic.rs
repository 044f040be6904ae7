//! Pydantic v2 (2.12) style validation of JSON payloads and query args, rendered as `str(ValidationError)`.

use serde_json::{Map, Value};

use crate::json::ApiError;
use crate::pyrepr::{py_repr, type_name};

struct LineError {
    loc: String,
    kind: &'static str,
    msg: String,
    input: Value,
}

/// Collects line errors for one model; `finish` turns them into `400 invalid_param`.
pub(crate) struct Validation<'a> {
    model: &'static str,
    whole: &'a Value,
    errors: Vec<LineError>,
}

impl<'a> Validation<'a> {
    pub fn new(model: &'static str, whole: &'a Value) -> Self {
        Validation {
            model,
            whole,
            errors: Vec::new(),
        }
    }

    pub fn push(&mut self, loc: &str, kind: &'static str, msg: &str, input: &Value) {
        self.errors.push(LineError {
            loc: loc.to_string(),
            kind,
            msg: msg.to_string(),
            input: input.clone(),
        });
    }

    fn missing(&mut self, loc: &str) {
        let whole = self.whole.clone();
        self.push(loc, "missing", "Field required", &whole);
    }

    /// The model's fields as a map, or a `model_type` error when the input is not an object.
    pub fn object(&mut self) -> Option<&'a Map<String, Value>> {
        match self.whole {
            Value::Object(map) => Some(map),
            other => {
                let msg = format!("Input should be a valid dictionary or instance of {}", self.model);
                self.push("", "model_type", &msg, other);
                None
            }
        }
    }

    /// Required `str` field.
    pub fn req_str(&mut self, map: &Map<String, Value>, name: &str) -> Option<String> {
        match map.get(name) {
            None => {
                self.missing(name);
                None
            }
            Some(v) => self.string(name, v),
        }
    }

    /// `str` field with a default (explicit `null` is an error).
    pub fn str_or(&mut self, map: &Map<String, Value>, name: &str, default: &str) -> String {
        match map.get(name) {
            None => default.to_string(),
            Some(v) => self.string(name, v).unwrap_or_default(),
        }
    }

    /// `str | None` field.
    pub fn opt_str(&mut self, map: &Map<String, Value>, name: &str) -> Option<String> {
        match map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => self.string(name, v),
        }
    }

    fn string(&mut self, loc: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.push(loc, "string_type", "Input should be a valid string", other);
                None
            }
        }
    }

    /// Required `dict[str, Any]` field.
    pub fn req_dict(&mut self, map: &Map<String, Value>, name: &str) -> Option<Map<String, Value>> {
        match map.get(name) {
            None => {
                self.missing(name);
                None
            }
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => {
                self.push(name, "dict_type", "Input should be a valid dictionary", other);
                None
            }
        }
    }

    /// `list[dict[str, Any]] | None` field.
    pub fn opt_list_of_dicts(&mut self, map: &Map<String, Value>, name: &str) {
        match map.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        let loc = format!("{name}.{i}");
                        self.push(&loc, "dict_type", "Input should be a valid dictionary", item);
                    }
                }
            }
            Some(other) => self.push(name, "list_type", "Input should be a valid list", other),
        }
    }

    /// `Literal[...] | None` field.
    pub fn opt_literal(&mut self, map: &Map<String, Value>, name: &str, allowed: &[&str]) -> Option<String> {
        let v = match map.get(name) {
            None | Some(Value::Null) => return None,
            Some(v) => v,
        };
        if let Value::String(s) = v
            && allowed.contains(&s.as_str())
        {
            return Some(s.clone());
        }
        self.push(name, "literal_error", &literal_msg(allowed), v);
        None
    }

    /// Required `float` field (lax: ints, bools and numeric strings accepted).
    pub fn req_float(&mut self, map: &Map<String, Value>, name: &str) -> Option<f64> {
        let v = match map.get(name) {
            None => {
                self.missing(name);
                return None;
            }
            Some(v) => v,
        };
        match v {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::String(s) => {
                let parsed = s.trim().parse::<f64>().ok();
                if parsed.is_none() {
                    let msg = "Input should be a valid number, unable to parse string as a number";
                    self.push(name, "float_parsing", msg, v);
                }
                parsed
            }
            other => {
                self.push(name, "float_type", "Input should be a valid number", other);
                None
            }
        }
    }

    /// `bool | None` field (lax bool parsing).
    pub fn opt_bool(&mut self, map: &Map<String, Value>, name: &str) {
        let v = match map.get(name) {
            None | Some(Value::Null) | Some(Value::Bool(_)) => return,
            Some(v) => v,
        };
        let ok = match v {
            Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 || f == 1.0),
            Value::String(s) => BOOL_WORDS.contains(&s.to_ascii_lowercase().as_str()),
            _ => false,
        };
        if ok {
            return;
        }
        match v {
            Value::String(_) => self.push(
                name,
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
                v,
            ),
            _ => self.push(name, "bool_type", "Input should be a valid boolean", v),
        }
    }

    /// `int` query arg with `ge`/`le` bounds (query values are strings).
    pub fn query_int(
        &mut self,
        map: &Map<String, Value>,
        name: &str,
        default: i64,
        ge: i64,
        le: Option<i64>,
    ) -> i64 {
        let v = match map.get(name) {
            None => return default,
            Some(v) => v,
        };
        let raw = v.as_str().unwrap_or_default().trim().to_string();
        let Ok(n) = raw.parse::<i64>() else {
            let msg = "Input should be a valid integer, unable to parse string as an integer";
            self.push(name, "int_parsing", msg, v);
            return default;
        };
        if n < ge {
            let msg = format!("Input should be greater than or equal to {ge}");
            self.push(name, "greater_than_equal", &msg, v);
        } else if let Some(le) = le.filter(|le| n > *le) {
            let msg = format!("Input should be less than or equal to {le}");
            self.push(name, "less_than_equal", &msg, v);
        }
        n
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_param(&self.render()))
        }
    }

    fn render(&self) -> String {
        let n = self.errors.len();
        let plural = if n == 1 { "" } else { "s" };
        let mut out = format!("{n} validation error{plural} for {}", self.model);
        for e in &self.errors {
            if !e.loc.is_empty() {
                out.push('\n');
                out.push_str(&e.loc);
            }
            out.push_str(&format!(
                "\n  {} [type={}, input_value={}, input_type={}]\n    For further information visit https://errors.pydantic.dev/2.12/v/{}",
                e.msg,
                e.kind,
                truncate(&py_repr(&e.input)),
                type_name(&e.input),
                e.kind
            ));
        }
        out
    }
}

const BOOL_WORDS: [&str; 12] = [
    "0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n",
];

fn literal_msg(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("Input should be {} or {last}", rest.join(", "))
        }
        _ => format!("Input should be {}", quoted.join("")),
    }
}

/// pydantic-core's `input_value` truncation: > 50 bytes => first 25 + "..." + last 24 (char-boundary safe).
fn truncate(repr: &str) -> String {
    if repr.len() <= 50 {
        return repr.to_string();
    }
    let mut head = 25;
    while !repr.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = repr.len() - 24;
    while !repr.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}...{}", &repr[..head], &repr[tail..])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_missing_field() {
        let body = serde_json::json!({"user": "u"});
        let mut v = Validation::new("CompletionRequestPayload", &body);
        let map = v.object().unwrap();
        v.req_dict(map, "inputs");
        assert_eq!(
            v.render(),
            "1 validation error for CompletionRequestPayload\ninputs\n  Field required [type=missing, input_value={'user': 'u'}, input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.12/v/missing"
        );
    }

    #[test]
    fn truncates_long_input() {
        let long = "x".repeat(60);
        let r = truncate(&format!("'{long}'"));
        assert_eq!(r, format!("'{}...{}'", "x".repeat(24), "x".repeat(23)));
    }
}
