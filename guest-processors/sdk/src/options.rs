//! The processor's options: the replication config's `[processor.options]` as JSON, with
//! accessors whose errors name the key.

use serde_json::{Map, Value};

/// The options object handed to `init`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    map: Map<String, Value>,
}

impl Options {
    /// Parses the options string the host passes (a JSON object).
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Self { map }),
            Ok(other) => Err(format!("options must be an object, got {other}")),
            Err(e) => Err(format!("options are not valid JSON: {e}")),
        }
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Fails naming the first key not in `known`, so typos do not pass silently.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unknown option `{k}`; expected one of: {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// A string option.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("option `{key}` must be a string, got {other}")),
        }
    }

    /// A boolean option, `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("option `{key}` must be true or false, got {other}")),
        }
    }

    /// A list of strings, empty when absent.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(format!("option `{key}` must list strings, got {other}")),
                })
                .collect(),
            Some(other) => Err(format!(
                "option `{key}` must be a list of strings, got {other}"
            )),
        }
    }

    /// An object mapping strings to strings, empty when absent.
    pub fn string_map(&self, key: &str) -> Result<Vec<(String, String)>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(format!("option `{key}.{k}` must be a string, got {other}")),
                })
                .collect(),
            Some(other) => Err(format!("option `{key}` must be an object, got {other}")),
        }
    }
}
