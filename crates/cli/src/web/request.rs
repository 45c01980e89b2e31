//! `POST /api/v1/estimate` bodies → the CLI's own arguments.
//!
//! Each request field is turned into the `estimate` flag of the same name (`kv_dtype` →
//! `--kv-dtype=…`) and the whole list is parsed by clap with the CLI's `EstimateArgs`, so the API
//! accepts exactly the CLI's options, with its defaults and its validation. The list of fields
//! and their JSON types is read from clap's own description of `EstimateArgs` (also the source of
//! the OpenAPI document), so a flag added to the CLI appears in the API without code here.

//! Request bodies → the CLI's own arguments, for each command the API runs (`estimate`, `plan`).
//!
//! Each request field is turned into the flag of the same name (`kv_dtype` → `--kv-dtype=…`; a
//! list field such as plan's `model` → one `--model=…` per entry) and the whole list is parsed by
//! clap with the command's own `Args` struct, so the API accepts exactly the CLI's options, with
//! its defaults and its validation. The list of fields and their JSON types is read from clap's
//! own description of that struct (also the source of the OpenAPI document), so a flag added to
//! the CLI appears in the API without code here. One `CommandSpec` per command: `ESTIMATE`, `PLAN`.

use super::error::ApiError;
use crate::commands::estimate::EstimateArgs;
use crate::commands::fit::FitArgs;
use crate::commands::plan::PlanArgs;
use clap::{ArgAction, Args};
use serde_json::{Map, Value};
use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::OnceLock;

/// CLI flags that are about output, not the configuration; the API does not take them.
/// `no_local` (fit): the server never reads its own disk or GPUs for a visitor. `offline`,
/// `refresh`, `timeout`: the server's Hub policy is its own (`serve --no-hub`,
/// `--hub-timeout`), not a visitor's to change. `file`: a GGUF file is chosen in the name
/// (`ORG/NAME:Q4_K_M`), as llama.cpp's `-hf` does.
const NOT_IN_API: &[&str] = &["json", "no-local", "offline", "refresh", "timeout", "file"];

/// The request field that carries a pasted Hugging Face config.json instead of `model`.
pub const CONFIG_FIELD: &str = "config";

/// Longest string accepted in any field. Names in the catalogue are under 100 characters; the
/// cap keeps the nearest-name search (quadratic in the length) cheap for hostile input.
pub const MAX_STRING_CHARS: usize = 256;

/// Most entries in a list field. Each plan model is a search of its own (~0.1 s in a release
/// build), so a 64 KiB body of model names must not buy minutes of CPU; 16 is more models or GPU
/// kinds than anyone compares at once (an empty `gpu` list already means every catalogue GPU).
pub const MAX_LIST_ITEMS: usize = 16;

/// The request fields of the `estimate` command; `config` is the API's own addition.
pub static ESTIMATE: CommandSpec<EstimateArgs> = CommandSpec::new("estimate", &[CONFIG_FIELD]);
/// The request fields of the `plan` command.
pub static PLAN: CommandSpec<PlanArgs> = CommandSpec::new("plan", &[]);
/// The request fields of the `fit` command (the catalogue on named GPUs: no detection).
pub static FIT: CommandSpec<FitArgs> = CommandSpec::new("fit", &[]);

#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// Non-negative integer (u64, u32, usize flags).
    Unsigned,
    /// Any JSON number (f64 flags).
    Number,
    /// One of a fixed set of names (clap value enums).
    Choice(Vec<String>),
    /// Free text, validated by the command (model, GPU, precision names).
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
    /// Each value's kind; for a list field, each entry's.
    pub kind: FieldKind,
    /// A flag given once per value (`Vec<…>` in the Args struct): a JSON array in the request.
    pub list: bool,
    pub help: String,
    /// The CLI's default, as clap shows it.
    pub default: Option<String>,
}

/// One CLI command as the API takes it: the clap description of its `Args` struct `A`, the
/// request fields read from it, and the fields the API adds that are not flags.
pub struct CommandSpec<A> {
    /// The CLI subcommand (argv[0] for clap).
    pub name: &'static str,
    /// Request fields that are not flags (estimate's `config`): passed back to the handler.
    pub extra_fields: &'static [&'static str],
    fields: OnceLock<Vec<Field>>,
    args: PhantomData<fn() -> A>,
}

/// A request, parsed: the CLI arguments, the extra fields given, and which fields were present.
pub struct Request<A> {
    pub args: A,
    /// Values of the spec's `extra_fields` that the body gave (not null).
    pub extra: Map<String, Value>,
    /// Field names present in the body (for pointing a command's error at its field).
    pub given: Vec<String>,
}

impl<A: Args> CommandSpec<A> {
    pub const fn new(name: &'static str, extra_fields: &'static [&'static str]) -> Self {
        CommandSpec {
            name,
            extra_fields,
            fields: OnceLock::new(),
            args: PhantomData,
        }
    }

    /// `A` as a stand-alone command, as `vramplan <name>` parses it (minus `--help`).
    pub fn command(&self) -> clap::Command {
        A::augment_args(clap::Command::new(self.name).disable_help_flag(true))
    }

    /// The accepted request fields (extra fields aside), from clap's description of `A`.
    pub fn fields(&self) -> &[Field] {
        self.fields.get_or_init(|| fields_of(&self.command()))
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields().iter().find(|f| f.name == name)
    }

    /// Checks each field's JSON type and converts the body to flags, then lets clap parse them
    /// into `A`. Every error names its field.
    pub fn parse(&self, body: &Value) -> Result<Request<A>, ApiError> {
        let Value::Object(map) = body else {
            return Err(ApiError::bad(
                None,
                format!(
                    "the request body must be a JSON object, e.g. {}",
                    self.example_body()
                ),
            ));
        };
        let mut argv: Vec<String> = vec![self.name.into()];
        let mut extra = Map::new();
        let mut given = Vec::new();
        for (name, value) in map {
            if value.is_null() {
                // null means "not given": the CLI's default applies.
                continue;
            }
            if self.extra_fields.contains(&name.as_str()) {
                extra.insert(name.clone(), value.clone());
                given.push(name.clone());
                continue;
            }
            let Some(f) = self.field(name) else {
                let names: Vec<&str> = self
                    .fields()
                    .iter()
                    .map(|f| f.name.as_str())
                    .chain(self.extra_fields.iter().copied())
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
            to_flags(f, value, &mut argv)?;
            given.push(name.clone());
        }
        let matches = self
            .command()
            .try_get_matches_from(&argv)
            .map_err(clap_error)?;
        let args = A::from_arg_matches(&matches).map_err(clap_error)?;
        Ok(Request { args, extra, given })
    }

    /// The smallest useful body, for the error that says what a body looks like.
    fn example_body(&self) -> &'static str {
        match self.field("model").map(|f| f.list) {
            Some(true) => "{\"model\": [\"llama-3.1-8b\"], \"gpu\": [\"h100\"]}",
            _ => "{\"model\": \"llama-3.1-8b\", \"gpu\": \"h100\"}",
        }
    }

    /// The field a command's error is about: among the fields the request gave (else all
    /// fields), the one whose name, flag or synonym appears first in the message (longest name
    /// on a tie, so "gpu memory utilization" wins over "gpu"). Best effort; `None` when no field
    /// is named.
    pub fn field_named_in(&self, message: &str, given: &[String]) -> Option<String> {
        let given_names: Vec<&str> = given.iter().map(String::as_str).collect();
        first_named(message, &mut given_names.iter().copied())
            .or_else(|| first_named(message, &mut self.fields().iter().map(|f| f.name.as_str())))
    }
}

/// The request fields of a clap command: every long flag but the output ones, typed from the
/// value parser clap holds for it.
fn fields_of(cmd: &clap::Command) -> Vec<Field> {
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
                list: matches!(arg.get_action(), ArgAction::Append),
                help,
                default,
            })
        })
        .collect()
}

/// One field as flags: a list field's JSON array gives one flag per entry, anything else one
/// flag (none for a switch set to false).
fn to_flags(f: &Field, value: &Value, argv: &mut Vec<String>) -> Result<(), ApiError> {
    if !f.list {
        argv.extend(to_flag(f, value, &f.name)?);
        return Ok(());
    }
    let items = match value {
        Value::Array(items) => items.as_slice(),
        // A list field with a default (estimate's `gpu`, a single value before `--gpu` could
        // be repeated) also takes one value: `"gpu": "h100"` stays valid.
        Value::String(_) | Value::Number(_) if f.default.is_some() => std::slice::from_ref(value),
        _ => {
            return Err(ApiError::bad(
                Some(&f.name),
                format!(
                    "{} must be an array of {}, got {}",
                    f.name,
                    kind_plural(&f.kind),
                    json_type(value)
                ),
            ))
        }
    };
    if items.len() > MAX_LIST_ITEMS {
        return Err(ApiError::bad(
            Some(&f.name),
            format!(
                "{} has {} entries; at most {MAX_LIST_ITEMS} are accepted",
                f.name,
                items.len()
            ),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        argv.extend(to_flag(f, item, &format!("{}[{i}]", f.name))?);
    }
    Ok(())
}

fn kind_plural(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Unsigned => "whole numbers",
        FieldKind::Number => "numbers",
        FieldKind::Choice(_) | FieldKind::Text => "strings",
        FieldKind::Switch => "booleans",
    }
}

/// One value as its `--flag=value` (the `=` form, so that a value starting with `-` stays a
/// value). `None` for a switch set to false. `label` names the value in messages (`model[1]`).
fn to_flag(f: &Field, value: &Value, label: &str) -> Result<Option<String>, ApiError> {
    let bad = |what: &str| {
        ApiError::bad(
            Some(&f.name),
            format!("{} must be {what}, got {}", label, json_type(value)),
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
                    format!("{} must not be negative, got {n}", label),
                ))
            }
            Value::Number(n) => {
                return Err(ApiError::bad(
                    Some(&f.name),
                    format!("{} must be a whole number from 0 to 2^64-1, got {n}", label),
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
                        label,
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
            format!("{} is longer than {MAX_STRING_CHARS} characters", label),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad(
            Some(&f.name),
            format!("{} contains control characters", label),
        ));
    }
    // No endpoint touches files a request names. `model` is checked against the catalogue before
    // an estimate runs (the planner only looks names up in the catalogue); no other value is ever
    // a path, so a path separator is refused outright. `override_tensor` (llama.cpp -ot) is a
    // regular expression, whose backslashes escape dots; the regex crate matches in linear time
    // within its size limits, so a hostile pattern cannot stall the server.
    if f.name != "model"
        && f.name != "override_tensor"
        && (text.contains('/') || text.contains('\\'))
    {
        return Err(ApiError::bad(
            Some(&f.name),
            format!("{} must be a name, not a path", label),
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
    // The first paragraph, on one line: "the following required arguments were not provided:"
    // continues with the flags on the lines below it.
    let rendered = e.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let line = paragraph.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    let message = if line.is_empty() {
        "invalid request"
    } else {
        line
    };
    ApiError::bad(field.as_deref(), message)
}

/// "--kv-dtype <KV_DTYPE>" → "kv_dtype".
fn flag_to_field(flag: &str) -> String {
    let name = flag.trim_start_matches('-');
    let name = name.split([' ', '=']).next().unwrap_or(name);
    name.replace('-', "_")
}

/// Words a command's message uses for a field besides its own name (the core's error texts).
fn synonyms(field: &str) -> &'static [&'static str] {
    match field {
        "quant" => &["precision"],
        "kv_dtype" => &["kv-cache dtype"],
        "gpu_memory" => &["memory size"],
        "tp" => &["tensor parallel", "tensor-parallel", "tensor"],
        "pp" => &["pipeline parallel", "pipeline"],
        "dp" => &["data parallel"],
        "batch" => &["sequences"],
        // Release::parse (core engine/vllm.rs) says "vLLM 0.9 is not modelled".
        "vllm_version" => &["vllm"],
        // SglangRelease::parse says "SGLang 0.3.6 is not modelled".
        "sglang_version" => &["sglang"],
        _ => &[],
    }
}

/// Of `names`, the one whose name, flag or synonym appears first in `message` (longest word on a
/// tie).
fn first_named(message: &str, names: &mut dyn Iterator<Item = &str>) -> Option<String> {
    let m = message.to_ascii_lowercase();
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
        let names: Vec<&str> = ESTIMATE.fields().iter().map(|f| f.name.as_str()).collect();
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
        assert_eq!(ESTIMATE.field("context").unwrap().kind, FieldKind::Unsigned);
        assert_eq!(
            ESTIMATE.field("gpu_memory_utilization").unwrap().kind,
            FieldKind::Number
        );
        assert_eq!(ESTIMATE.field("kv_dtype").unwrap().flag, "kv-dtype");
        assert!(!ESTIMATE.field("model").unwrap().list);
    }

    #[test]
    fn plan_fields_follow_the_plan_flags() {
        let names: Vec<&str> = PLAN.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "model",
                "context",
                "concurrency",
                "rate",
                "output_tokens",
                "engine",
                "vllm_version",
                "gpu",
                "max_gpus",
                "quant",
                "kv_dtype",
                "gpu_memory_utilization",
                "top",
                "time_budget",
                "max_candidates"
            ]
        );
        for list in ["model", "gpu", "quant", "kv_dtype"] {
            let f = PLAN.field(list).unwrap();
            assert!(f.list && f.kind == FieldKind::Text, "{list}");
        }
        assert!(!PLAN.field("vllm_version").unwrap().list);
        assert_eq!(PLAN.field("rate").unwrap().kind, FieldKind::Number);
        assert_eq!(PLAN.field("top").unwrap().kind, FieldKind::Unsigned);
        assert_eq!(
            PLAN.field("engine").unwrap().kind,
            FieldKind::Choice(vec![
                "vllm".into(),
                "llamacpp".into(),
                "sglang".into(),
                "generic".into()
            ])
        );
    }

    #[test]
    fn body_becomes_flags() {
        let r = ESTIMATE.parse(&json!({"model": "llama-3.1-8b", "context": 4096, "kv_dtype": "fp8", "gpu_memory_utilization": 0.85})).unwrap();
        assert_eq!(r.args.model, "llama-3.1-8b");
        assert_eq!(r.args.context, 4096);
        assert_eq!(r.args.kv_dtype, "fp8");
        assert_eq!(r.args.gpu_memory_utilization, Some(0.85));
        // Defaults are the CLI's.
        assert_eq!(r.args.batch, 1);
        assert!(r.extra.is_empty());
        let r = ESTIMATE.parse(&json!({"config": {"a": 1}})).unwrap();
        assert_eq!(r.extra["config"], json!({"a": 1}));
        assert_eq!(r.given, ["config"]);
    }

    #[test]
    fn plan_body_becomes_repeated_flags() {
        let r = PLAN
            .parse(&json!({"model": ["llama-3.1-70b", "meta-llama/Llama-3.1-8B"], "gpu": ["h100", "l40s"], "concurrency": 32, "rate": 1.5, "engine": "sglang"}))
            .unwrap();
        assert_eq!(r.args.model, ["llama-3.1-70b", "meta-llama/Llama-3.1-8B"]);
        assert_eq!(r.args.gpu, ["h100", "l40s"]);
        assert_eq!(r.args.concurrency, 32);
        assert_eq!(r.args.rate, Some(1.5));
        assert_eq!(r.args.engine, crate::commands::plan::PlanEngine::Sglang);
        // The CLI's defaults.
        assert_eq!(r.args.context, 8192);
        assert_eq!(r.args.max_gpus, 8);
        assert!(r.args.kv_dtype.is_empty() && r.args.quant.is_empty());
        // An empty list is the flag not given; model is required, as on the command line.
        let e = PLAN.parse(&json!({"model": []})).err().unwrap();
        assert_eq!(e.field.as_deref(), Some("model"));
        assert_eq!(
            e.error,
            "the following required arguments were not provided: --model <MODEL>"
        );
        assert!(PLAN.parse(&json!({"model": ["x"], "gpu": []})).is_ok());
    }

    #[test]
    fn a_value_starting_with_dashes_stays_a_value() {
        let r = ESTIMATE.parse(&json!({"quant": "--json"})).unwrap();
        assert_eq!(r.args.quant.as_deref(), Some("--json"));
        let r = PLAN.parse(&json!({"model": ["--top=3"]})).unwrap();
        assert_eq!(r.args.model, ["--top=3"]);
        assert_eq!(r.args.top, 12);
    }

    #[test]
    fn errors_name_the_field() {
        let field_of = |v: Value| ESTIMATE.parse(&v).err().unwrap().field;
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
        // A plan-only flag is unknown to estimate, and the other way round.
        assert_eq!(
            field_of(json!({"concurrency": 2})).as_deref(),
            Some("concurrency")
        );
        assert!(ESTIMATE.parse(&json!([1, 2])).is_err());
    }

    #[test]
    fn plan_errors_name_the_field() {
        let err = |v: Value| PLAN.parse(&v).err().unwrap();
        let e = err(json!({"model": "llama-3.1-8b"}));
        assert_eq!(e.field.as_deref(), Some("model"));
        assert_eq!(e.error, "model must be an array of strings, got a string");
        let e = err(json!({"model": ["llama-3.1-8b", 7]}));
        assert_eq!(e.field.as_deref(), Some("model"));
        assert_eq!(e.error, "model[1] must be a string, got a number");
        let e = err(json!({"model": ["x"], "engine": ["vllm"]}));
        assert_eq!(e.field.as_deref(), Some("engine"));
        assert!(e.error.ends_with("got an array"), "{}", e.error);
        let e = err(json!({"model": ["x"], "gpu": ["h100", "../h100"]}));
        assert_eq!(e.field.as_deref(), Some("gpu"));
        assert_eq!(e.error, "gpu[1] must be a name, not a path");
        let e = err(json!({"model": vec!["x"; MAX_LIST_ITEMS + 1]}));
        assert_eq!(e.field.as_deref(), Some("model"));
        assert!(PLAN
            .parse(&json!({"model": vec!["x"; MAX_LIST_ITEMS]}))
            .is_ok());
        assert_eq!(
            err(json!({"model": ["x"], "batch": 2})).field.as_deref(),
            Some("batch")
        );
        assert_eq!(
            err(json!({"model": ["x"], "config": {}})).field.as_deref(),
            Some("config")
        );
        assert_eq!(
            err(json!({"model": ["x"], "concurrency": -1}))
                .field
                .as_deref(),
            Some("concurrency")
        );
    }

    #[test]
    fn command_messages_point_at_their_field() {
        let given = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let named = |m: &str, g: &[&str]| ESTIMATE.field_named_in(m, &given(g));
        assert_eq!(
            named(
                "GPU memory utilization 1.5 must be in (0, 1]",
                &["gpu_memory_utilization", "gpu"]
            )
            .as_deref(),
            Some("gpu_memory_utilization")
        );
        assert_eq!(
            named("unknown precision 'x'; use one of", &["quant"]).as_deref(),
            Some("quant")
        );
        assert_eq!(
            named("--gpus 3 disagrees with --tp 2", &["tp", "gpus"]).as_deref(),
            Some("gpus")
        );
        assert_eq!(
            named("context of 99 tokens is absurd", &[]).as_deref(),
            Some("context")
        );
        assert_eq!(named("unknown GPU 'zz'", &["gpu"]).as_deref(), Some("gpu"));
        let plan_named = |m: &str, g: &[&str]| PLAN.field_named_in(m, &given(g));
        assert_eq!(
            plan_named("vLLM 0.1 is not modelled: …", &["model", "vllm_version"]).as_deref(),
            Some("vllm_version")
        );
        assert_eq!(
            plan_named(
                "--max-gpus must be between 1 and 512",
                &["model", "max_gpus"]
            )
            .as_deref(),
            Some("max_gpus")
        );
        assert_eq!(
            plan_named("--output-tokens must be smaller than --context", &["model"]).as_deref(),
            Some("output_tokens")
        );
    }
}
