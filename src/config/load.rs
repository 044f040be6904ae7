//! Reads the TOML file, expands `${VAR}` / `${VAR:-default}` in every string value and deserializes the
//! raw tree (start-up step 1). Problems are collected by key path, never returned one at a time.

use super::file::FileConfig;
use std::path::Path;

/// Where `${VAR}` values come from. The process environment in production, a map in tests.
pub trait EnvSource {
    /// The variable's value, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl EnvSource for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A parsed tree and the problems found on the way (unknown keys, unset variables). When the tree
/// could be built at all, validation still runs over it so that every problem is reported at once.
pub type Parsed = (FileConfig, Vec<String>);

/// Reads and parses `path`. Every problem found is returned as `key.path: message`.
pub fn load_file(path: &Path, env: &dyn EnvSource) -> Result<Parsed, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read config file: {e}", path.display())])?;
    parse(&text, env)
}

/// Parses config text. Every problem found is returned as `key.path: message`.
pub fn parse(text: &str, env: &dyn EnvSource) -> Result<Parsed, Vec<String>> {
    let mut value: toml::Value = toml::from_str(text).map_err(|e| vec![toml_error(&e)])?;
    let mut errors = Vec::new();
    interpolate_value(&mut value, "", env, &mut errors);
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        unknown.push(format!("{}: unknown key", display_path(&path.to_string())));
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    let parsed: Result<FileConfig, _> = serde_path_to_error::deserialize(ignored);
    errors.extend(unknown);
    match parsed {
        Ok(cfg) => Ok((cfg, errors)),
        Err(e) => {
            errors.push(format!("{}: {}", display_path(&e.path().to_string()), e.inner()));
            Err(errors)
        }
    }
}

fn toml_error(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => format!("syntax error at byte {}: {msg}", span.start),
        None => format!("syntax error: {msg}"),
    }
}

/// serde paths print array indices as `.0`; key paths read better as `[0]`.
fn display_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, part) in path.split('.').enumerate() {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(part);
            out.push(']');
        } else {
            if i > 0 {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn interpolate_value(v: &mut toml::Value, path: &str, env: &dyn EnvSource, errors: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(msg) => errors.push(format!("{path}: {msg}")),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, errors);
            }
        }
        toml::Value::Table(table) => {
            for (k, item) in table.iter_mut() {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                interpolate_value(item, &sub, env, errors);
            }
        }
        _ => {}
    }
}

/// Expands `${VAR}` and `${VAR:-default}`; `$${` stands for a literal `${`.
pub fn expand(input: &str, env: &dyn EnvSource) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            out.push_str(&lookup(&tail[..end], env)?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(expr: &str, env: &dyn EnvSource) -> Result<String, String> {
    let (name, default) = match expr.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (expr, None),
    };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!("`${{{expr}}}` is not a valid variable reference"));
    }
    match (env.var(name), default) {
        (Some(v), Some(d)) if v.is_empty() => Ok(d.to_string()),
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!("environment variable {name} is not set")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_variables_and_defaults() {
        let e = env(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(expand("a${A}b", &e).unwrap(), "axb");
        assert_eq!(expand("${B:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(expand("${EMPTY:-d}", &e).unwrap(), "d");
        assert_eq!(expand("$${A} $5", &e).unwrap(), "${A} $5");
        assert!(expand("${B}", &e).unwrap_err().contains("B is not set"));
        assert!(expand("${A", &e).is_err());
        assert!(expand("${A B}", &e).is_err());
    }

    #[test]
    fn reports_unknown_keys_and_missing_vars_by_path() {
        let text = r#"
            bogus = 1
            [server]
            listne = "x"
            [[tenants]]
            id = "acme"
            [[tenants.apps]]
            name = "w"
            api_key = "${NOPE}"
        "#;
        let (_, errs) = parse(text, &env(&[])).unwrap();
        assert!(
            errs.iter()
                .any(|e| e == "tenants[0].apps[0].api_key: environment variable NOPE is not set"),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e == "bogus: unknown key"), "{errs:?}");
        assert!(errs.iter().any(|e| e == "server.listne: unknown key"), "{errs:?}");
    }

    #[test]
    fn reports_type_errors_by_path() {
        let errs = parse("[server]\nthreads = \"two\"\n", &env(&[])).unwrap_err();
        assert!(errs[0].starts_with("server.threads: "), "{errs:?}");
    }
}
