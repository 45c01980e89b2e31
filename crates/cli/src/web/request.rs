//! `POST /api/v1/estimate` bodies → the CLI's own arguments.
//!
//! Each request field is turned into the `estimate` flag of the same name (`kv_dtype` →
//! `--kv-dtype=…`) and the whole list is parsed by clap with the CLI's `EstimateArgs`, so the API
//! accepts exactly the CLI's options, with its defaults and its validation. The list of fields
//! and their JSON types is read from clap's own description of `EstimateArgs` (also the source of
//! the OpenAPI document), so a flag added to the CLI appears in the API without code here.

use super::error::ApiError;
use crate::commands::estimate::EstimateArgs;
use clap::{ArgAction, CommandFactory, Parser};
use serde_json::{Map, Value};
use std::any::TypeId;
use std::sync::OnceLock;

/// `EstimateArgs` as a stand-alone command, for parsing a request's flags.
#[derive(Parser)]
#[command(name = "estimate", disable_help_flag = true)]
pub struct EstimateCommand {
    #[command(flatten)]
    pub args: EstimateArgs,
}

/// CLI flags that are about output, not the configuration; the API does not take them.
const NOT_IN_API: &[&str] = &["json"];

/// The request field that carries a pasted Hugging Face config.json instead of `model`.
pub const CONFIG_FIELD: &str = "config";

/// Longest string accepted in any field. Names in the catalogue are under 100 characters; the
/// cap keeps the nearest-name search (quadratic in the length) cheap for hostile input.
pub const MAX_STRING_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// Non-negative integer (u64, u32, usize flags).
    Unsigned,
    /// Any JSON number (f64 flags).
    Number,
    /// One of a fixed set of names (clap value enums).
    Choice(Vec<String>),
    /// Free text, validated by the estimator (model, GPU, precision names).
    Text,
    /// A switch: `true` passes the flag, `false` leaves it off.
    Switch,
}

#[derive(Debug, Clone)]
pub struct Field {
    /// JSON name: the long flag with `-` → `_`.
    pub name: String,
    /// The CLI flag, without the leading `--`.
    pub flag: String,
    pub kind: FieldKind,
    pub help: String,
    /// The CLI's default, as clap shows it.
    pub default: Option<String>,
}

/// The accepted request fields, from clap's description of `EstimateArgs`.
pub fn fields() -> &'static [Field] {
    static FIELDS: OnceLock<Vec<Field>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let cmd = EstimateCommand::command();
        cmd.get_arguments()
            .filter_map(|arg| {
                let flag = arg.get_long()?.to_string();
                if NOT_IN_API.contains(&flag.as_str()) {
                    return None;
                }
                let type_id = arg.get_value_parser().type_id();
                let choices: Vec<String> = arg
                    .get_possible_values()
                    .iter()
                    .map(|p| p.get_name().to_string())
                    .collect();
                let kind = if matches!(arg.get_action(), ArgAction::SetTrue) {
                    FieldKind::Switch
                } else if !choices.is_empty() {
                    FieldKind::Choice(choices)
                } else if type_id == TypeId::of::<u64>()
                    || type_id == TypeId::of::<u32>()
                    || type_id == TypeId::of::<usize>()
                {
                    FieldKind::Unsigned
                } else if type_id == TypeId::of::<f64>() || type_id == TypeId::of::<f32>() {
                    FieldKind::Number
                } else {
                    FieldKind::Text
                };
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let default = arg
                    .get_default_values()
                    .first()
                    .map(|d| d.to_string_lossy().into_owned());
                Some(Field {
                    name: flag.replace('-', "_"),
                    flag,
                    kind,
                    help,
                    default,
                })
            })
            .collect()
    })
}

pub fn field(name: &str) -> Option<&'static Field> {
    fields().iter().find(|f| f.name == name)
}

/// A request, parsed: the CLI arguments and, when given, the pasted config.json object.
pub struct EstimateRequest {
    pub args: EstimateArgs,
    pub config: Option<Map<String, Value>>,
    /// Field names present in the body (for pointing an estimator error at its field).
    pub given: Vec<String>,
}

/// Checks each field's JSON type and converts the body to `estimate` flags, then lets clap parse
/// them. Every error names its field.
pub fn parse(body: &Value) -> Result<EstimateRequest, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::bad(None, "the request body must be a JSON object, e.g. {\"model\": \"llama-3.1-8b\", \"gpu\": \"h100\"}"));
    };
    let mut argv: Vec<String> = vec!["estimate".into()];
    let mut config = None;
    let mut given = Vec::new();
    for (name, value) in map {
        if value.is_null() {
            // null means "not given": the CLI's default applies.
            continue;
        }
        if name == CONFIG_FIELD {
            match value {
                Value::Object(c) => config = Some(c.clone()),
                _ => {
                    return Err(ApiError::bad(
                        Some(name),
                        "config must be a JSON object: the contents of a Hugging Face config.json",
                    ))
                }
            }
            given.push(name.clone());
            continue;
        }
        let Some(f) = field(name) else {
            let names: Vec<&str> = fields()
                .iter()
                .map(|f| f.name.as_str())
                .chain([CONFIG_FIELD])
                .collect();
            return Err(ApiError::bad(
                Some(name),
                format!(
                    "unknown field '{}'; accepted: {}",
                    clip(name),
                    names.join(", ")
                ),
            ));
        };
        if let Some(flag) = to_flag(f, value)? {
            argv.push(flag);
        }
        given.push(name.clone());
    }
    if config.is_some() && map.get("model").is_some_and(|m| !m.is_null()) {
        return Err(ApiError::bad(
            Some(CONFIG_FIELD),
            "give either model (a catalogue name) or config (a pasted config.json), not both",
        ));
    }
    let parsed = EstimateCommand::try_parse_from(&argv).map_err(clap_error)?;
    Ok(EstimateRequest {
        args: parsed.args,
        config,
        given,
    })
}

/// One field as its `--flag=value` (the `=` form, so that a value starting with `-` stays a
/// value). `None` for a switch set to false.
fn to_flag(f: &Field, value: &Value) -> Result<Option<String>, ApiError> {
    let bad = |what: &str| {
        ApiError::bad(
            Some(&f.name),
            format!("{} must be {what}, got {}", f.name, json_type(value)),
        )
    };
    let text = match &f.kind {
        FieldKind::Switch => {
            return match value {
                Value::Bool(true) => Ok(Some(format!("--{}", f.flag))),
                Value::Bool(false) => Ok(None),
                _ => Err(bad("true or false")),
            }
        }
        FieldKind::Unsigned => match value {
            Value::Number(n) if n.is_u64() => n.to_string(),
            Value::Number(n) if n.is_i64() => {
                return Err(ApiError::bad(
                    Some(&f.name),
                    format!("{} must not be negative, got {n}", f.name),
                ))
            }
            Value::Number(n) => {
                return Err(ApiError::bad(
                    Some(&f.name),
                    format!(
                        "{} must be a whole number from 0 to 2^64-1, got {n}",
                        f.name
                    ),
                ))
            }
            _ => return Err(bad("a whole number")),
        },
        FieldKind::Number => match value {
            // serde_json only parses finite numbers; its text form reads back to the same f64.
            Value::Number(n) => n.to_string(),
            _ => return Err(bad("a number")),
        },
        FieldKind::Choice(choices) => match value {
            Value::String(s) if choices.iter().any(|c| c == s) => s.clone(),
            Value::String(s) => {
                return Err(ApiError::bad(
                    Some(&f.name),
                    format!(
                        "{} must be one of {}, got '{}'",
                        f.name,
                        choices.join(", "),
                        clip(s)
                    ),
                ))
            }
            _ => return Err(bad(&format!("one of {}", choices.join(", ")))),
        },
        FieldKind::Text => match value {
            Value::String(s) => s.clone(),
            _ => return Err(bad("a string")),
        },
    };
    if text.chars().count() > MAX_STRING_CHARS {
        return Err(ApiError::bad(
            Some(&f.name),
            format!("{} is longer than {MAX_STRING_CHARS} characters", f.name),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad(
            Some(&f.name),
            format!("{} contains control characters", f.name),
        ));
    }
    // No endpoint touches files a request names. `model` is checked against the catalogue before
    // the estimate runs; no other value is ever a path, so a path separator is refused outright.
    if f.name != "model" && (text.contains('/') || text.contains('\\')) {
        return Err(ApiError::bad(
            Some(&f.name),
            format!("{} must be a name, not a path", f.name),
        ));
    }
    Ok(Some(format!("--{}={text}", f.flag)))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A name echoed in an error, cut short so a hostile field name cannot make the answer large.
pub fn clip(s: &str) -> String {
    if s.chars().count() <= 64 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(64).collect::<String>())
    }
}

/// clap's error as one line, naming the field from the flag clap complains about.
fn clap_error(e: clap::Error) -> ApiError {
    use clap::error::{ContextKind, ContextValue};
    let field = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => Some(flag_to_field(s)),
        Some(ContextValue::Strings(v)) => v.first().map(|s| flag_to_field(s)),
        _ => None,
    };
    let rendered = e.render().to_string();
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid request")
        .trim();
    let message = line.strip_prefix("error: ").unwrap_or(line).to_string();
    ApiError::bad(field.as_deref(), message)
}

/// "--kv-dtype <KV_DTYPE>" → "kv_dtype".
fn flag_to_field(flag: &str) -> String {
    let name = flag.trim_start_matches('-');
    let name = name.split([' ', '=']).next().unwrap_or(name);
    name.replace('-', "_")
}

/// Words an estimator message uses for a field besides its own name (the core's error texts).
fn synonyms(field: &str) -> &'static [&'static str] {
    match field {
        "quant" => &["precision"],
        "kv_dtype" => &["kv-cache dtype"],
        "gpu_memory" => &["memory size"],
        "tp" => &["tensor parallel", "tensor-parallel", "tensor"],
        "pp" => &["pipeline parallel", "pipeline"],
        "dp" => &["data parallel"],
        "batch" => &["sequences"],
        _ => &[],
    }
}

/// The field an estimator error is about: among the fields the request gave (else all fields),
/// the one whose name, flag or synonym appears first in the message (longest name on a tie, so
/// "gpu memory utilization" wins over "gpu"). Best effort; `None` when no field is named.
pub fn field_named_in(message: &str, given: &[String]) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let pick = |names: &mut dyn Iterator<Item = &str>| -> Option<String> {
        let mut best: Option<(usize, usize, String)> = None;
        for name in names {
            let mut words = vec![
                name.replace('_', " "),
                name.replace('_', "-"),
                name.to_string(),
            ];
            words.extend(synonyms(name).iter().map(|s| s.to_string()));
            for w in words {
                if let Some(pos) = find_word(&m, &w) {
                    let better = match &best {
                        None => true,
                        Some((p, len, _)) => pos < *p || (pos == *p && w.len() > *len),
                    };
                    if better {
                        best = Some((pos, w.len(), name.to_string()));
                    }
                }
            }
        }
        best.map(|(_, _, n)| n)
    };
    let given_names: Vec<&str> = given.iter().map(String::as_str).collect();
    pick(&mut given_names.iter().copied())
        .or_else(|| pick(&mut fields().iter().map(|f| f.name.as_str())))
}

/// Position of `word` in `text` where it is not part of a longer word (so "gpu" does not match
/// inside "gpus").
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back().is_none_or(|c| !is_word(c));
        let after = text[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !is_word(c));
        before && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_follow_the_cli_flags() {
        let names: Vec<&str> = fields().iter().map(|f| f.name.as_str()).collect();
        for n in [
            "model",
            "gpu",
            "gpus",
            "context",
            "batch",
            "quant",
            "kv_dtype",
            "gpu_memory_utilization",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(!names.contains(&"json"));
        assert_eq!(field("context").unwrap().kind, FieldKind::Unsigned);
        assert_eq!(
            field("gpu_memory_utilization").unwrap().kind,
            FieldKind::Number
        );
        assert_eq!(field("kv_dtype").unwrap().flag, "kv-dtype");
    }

    #[test]
    fn body_becomes_flags() {
        let r = parse(&json!({"model": "llama-3.1-8b", "context": 4096, "kv_dtype": "fp8", "gpu_memory_utilization": 0.85})).unwrap();
        assert_eq!(r.args.model, "llama-3.1-8b");
        assert_eq!(r.args.context, 4096);
        assert_eq!(r.args.kv_dtype, "fp8");
        assert_eq!(r.args.gpu_memory_utilization, 0.85);
        // Defaults are the CLI's.
        assert_eq!(r.args.batch, 1);
    }

    #[test]
    fn a_value_starting_with_dashes_stays_a_value() {
        let r = parse(&json!({"quant": "--json"})).unwrap();
        assert_eq!(r.args.quant.as_deref(), Some("--json"));
    }

    #[test]
    fn errors_name_the_field() {
        let field_of = |v: Value| parse(&v).err().unwrap().field;
        assert_eq!(field_of(json!({"contxt": 1})).as_deref(), Some("contxt"));
        assert_eq!(field_of(json!({"context": -1})).as_deref(), Some("context"));
        assert_eq!(
            field_of(json!({"context": 1.5})).as_deref(),
            Some("context")
        );
        assert_eq!(
            field_of(json!({"context": "8k"})).as_deref(),
            Some("context")
        );
        assert_eq!(
            field_of(json!({"formula": "magic"})).as_deref(),
            Some("formula")
        );
        assert_eq!(
            field_of(json!({"gpu": "../etc/passwd"})).as_deref(),
            Some("gpu")
        );
        assert_eq!(field_of(json!({"json": true})).as_deref(), Some("json"));
        assert_eq!(
            field_of(json!({"model": "x", "config": {}})).as_deref(),
            Some("config")
        );
        assert!(parse(&json!([1, 2])).is_err());
    }

    #[test]
    fn estimator_messages_point_at_their_field() {
        let given = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            field_named_in(
                "GPU memory utilization 1.5 must be in (0, 1]",
                &given(&["gpu_memory_utilization", "gpu"])
            )
            .as_deref(),
            Some("gpu_memory_utilization")
        );
        assert_eq!(
            field_named_in("unknown precision 'x'; use one of", &given(&["quant"])).as_deref(),
            Some("quant")
        );
        assert_eq!(
            field_named_in("--gpus 3 disagrees with --tp 2", &given(&["tp", "gpus"])).as_deref(),
            Some("gpus")
        );
        assert_eq!(
            field_named_in("context of 99 tokens is absurd", &given(&[])).as_deref(),
            Some("context")
        );
        assert_eq!(
            field_named_in("unknown GPU 'zz'", &given(&["gpu"])).as_deref(),
            Some("gpu")
        );
    }
}
