//! Reading config.json fields as transformers reads them: a key present in the JSON wins; else
//! the configuration class's alternative name (`attribute_map`: GPT-2's `n_embd` is
//! `hidden_size`); else the class's own default, which `save_pretrained` leaves out of the file
//! (`data/transformers/config_classes.json`). Every key read is remembered, so the mapping can
//! tell afterwards which keys of the file it did not look at.
//!
//! Errors name the field by its path in the file (`text_config.num_key_value_heads`).

use super::classes::{self, ConfigClass};
use super::ArchError;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Lists read from a config (`layer_types`, per-layer head counts and widths, layer indices) hold
/// at most one entry per layer: capped at the layer bound before anything is allocated per entry.
pub const MAX_LIST_LEN: usize = crate::limits::MAX_PER_LAYER_ENTRIES as usize;

/// One JSON object of the config (the top level, `text_config`, `vision_config`...), with the
/// class that reads it.
pub struct Scope<'a> {
    pub obj: &'a Map<String, Value>,
    /// Nested objects read as if their keys were this scope's (DBRX `attn_config`), with their
    /// paths.
    pub flattened: Vec<(String, &'a Map<String, Value>)>,
    /// "" at the top level, else "text_config." and so on.
    pub path: String,
    pub class: Option<&'static ConfigClass>,
    used: RefCell<BTreeSet<String>>,
}

/// A value found for a key, and the path it was found under (for errors).
pub struct Found<'v> {
    pub field: String,
    pub value: &'v Value,
}

impl<'a> Scope<'a> {
    /// A scope over `obj` at `path` (with its trailing dot), read with the class of
    /// `model_type` (the object's own `model_type` wins).
    pub fn new(obj: &'a Map<String, Value>, path: &str, model_type: Option<&str>) -> Scope<'a> {
        // A nested config's own model_type names its class, except when it repeats the
        // composite's (Qwen3-VL's vision_config says "qwen3_vl"): then the composite's
        // sub-config class applies, as transformers' `sub_configs_defaults` does.
        let own = obj
            .get("model_type")
            .and_then(Value::as_str)
            .filter(|o| classes::class(o).is_some());
        let class = match (own, model_type) {
            (Some(o), Some(sub))
                if classes::class(o).is_some_and(|c| c.is_composite())
                    && classes::class(sub).is_some() =>
            {
                classes::class(sub)
            }
            (Some(o), _) => classes::class(o),
            (None, sub) => sub.and_then(classes::class),
        };
        Scope {
            obj,
            flattened: Vec::new(),
            path: path.to_string(),
            class,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// Reads the keys of the nested objects `names` as this scope's own (after its own keys).
    pub fn flatten(mut self, names: &[String]) -> Scope<'a> {
        for n in names {
            if let Some(Value::Object(o)) = self.obj.get(n) {
                self.used.borrow_mut().insert(n.clone());
                self.flattened.push((format!("{}{n}.", self.path), o));
            }
        }
        self
    }

    /// A scope read with the class of `model_type` whatever the object's own `model_type` says
    /// (Qwen2.5-VL's legacy configs keep the text fields at the top level, read with the
    /// text class's defaults).
    pub fn with_class(obj: &'a Map<String, Value>, path: &str, model_type: &str) -> Scope<'a> {
        Scope {
            obj,
            flattened: Vec::new(),
            path: path.to_string(),
            class: classes::class(model_type),
            used: RefCell::new(BTreeSet::new()),
        }
    }

    /// The model_type this scope is read as.
    pub fn model_type(&self) -> Option<&str> {
        self.class
            .map(|c| c.model_type.as_str())
            .or_else(|| self.obj.get("model_type").and_then(Value::as_str))
    }

    pub fn field(&self, key: &str) -> String {
        format!("{}{key}", self.path)
    }

    /// Keys of the object this scope has read (directly or through an alias).
    pub fn used(&self) -> BTreeSet<String> {
        self.used.borrow().clone()
    }

    /// Records keys as read without reading them: pattern keys an explicit list supersedes.
    pub fn mark_read(&self, keys: &[&str]) {
        for k in keys {
            self.mark(k);
        }
    }

    fn mark(&self, key: &str) {
        self.used.borrow_mut().insert(key.to_string());
    }

    /// The value of the first of `names` present and non-null in the file (or under the class's
    /// alternative name), else the class default of the first that has one.
    pub fn find(&self, names: &[&str]) -> Option<Found<'a>> {
        for name in names {
            self.mark(name);
            if let Some(v) = self.obj.get(*name).filter(|v| !v.is_null()) {
                return Some(Found {
                    field: self.field(name),
                    value: v,
                });
            }
            if let Some(alias) = self.class.and_then(|c| c.alias_of(name)) {
                self.mark(alias);
                if let Some(v) = self.obj.get(alias).filter(|v| !v.is_null()) {
                    return Some(Found {
                        field: self.field(alias),
                        value: v,
                    });
                }
            }
            for (path, o) in &self.flattened {
                if let Some(v) = o.get(*name).filter(|v| !v.is_null()) {
                    return Some(Found {
                        field: format!("{path}{name}"),
                        value: v,
                    });
                }
            }
        }
        let class = self.class?;
        for name in names {
            // A key the file sets to null is None in transformers (the class's __init__ receives
            // it and keeps it, or derives its own value from None, as num_key_value_heads does):
            // never the class default. Mistral-Nemo's `"sliding_window": null` is full attention,
            // not MistralConfig's default window of 4096.
            if self.explicitly_null(name) {
                continue;
            }
            if let Some(v) = class.default(name) {
                return Some(Found {
                    field: format!("{}{name} (default of {})", self.path, class.class_name),
                    value: v,
                });
            }
        }
        None
    }

    /// Whether the file itself sets `name` (or the class's own name for it) to null.
    fn explicitly_null(&self, name: &str) -> bool {
        let null_in =
            |o: &serde_json::Map<String, Value>, key: &str| o.get(key).is_some_and(Value::is_null);
        null_in(self.obj, name)
            || self
                .class
                .and_then(|c| c.alias_of(name))
                .is_some_and(|a| null_in(self.obj, a))
    }

    /// Whether the file itself (not a class default) has one of `names`, non-null.
    pub fn has(&self, names: &[&str]) -> bool {
        names.iter().any(|n| {
            self.mark(n);
            self.obj.get(*n).is_some_and(|v| !v.is_null())
                || self
                    .flattened
                    .iter()
                    .any(|(_, o)| o.get(*n).is_some_and(|v| !v.is_null()))
                || self
                    .class
                    .and_then(|c| c.alias_of(n))
                    .is_some_and(|a| self.obj.get(a).is_some_and(|v| !v.is_null()))
        })
    }

    pub(crate) fn wrong(&self, f: &Found, expected: &str) -> ArchError {
        ArchError::field(
            &f.field,
            format!(
                "field '{}' must be {expected}, found {}",
                f.field,
                describe_value(f.value)
            ),
        )
    }

    pub fn u64(&self, names: &[&str]) -> Result<Option<u64>, ArchError> {
        match self.find(names) {
            None => Ok(None),
            Some(f) => as_u64(f.value)
                .map(Some)
                .ok_or_else(|| self.wrong(&f, "a non-negative integer")),
        }
    }

    pub fn u64_or(&self, names: &[&str], default: u64) -> Result<u64, ArchError> {
        Ok(self.u64(names)?.unwrap_or(default))
    }

    /// A required integer: missing is an error naming the first name.
    pub fn req_u64(&self, names: &[&str]) -> Result<u64, ArchError> {
        self.u64(names)?.ok_or_else(|| {
            let first = names.first().copied().unwrap_or("?");
            let also = if names.len() > 1 {
                format!(" (also looked for {})", names[1..].join(", "))
            } else {
                String::new()
            };
            ArchError::field(
                &self.field(first),
                format!("missing required field '{}'{also}", self.field(first)),
            )
        })
    }

    pub fn f64(&self, names: &[&str]) -> Result<Option<f64>, ArchError> {
        match self.find(names) {
            None => Ok(None),
            Some(f) => match f.value {
                Value::Number(n) => n
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| self.wrong(&f, "a number")),
                _ => Err(self.wrong(&f, "a number")),
            },
        }
    }

    pub fn bool(&self, names: &[&str]) -> Result<Option<bool>, ArchError> {
        match self.find(names) {
            None => Ok(None),
            Some(Found {
                value: Value::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(f) => Err(self.wrong(&f, "true or false")),
        }
    }

    pub fn flag(&self, names: &[&str]) -> Result<bool, ArchError> {
        Ok(self.bool(names)?.unwrap_or(false))
    }

    pub fn string(&self, names: &[&str]) -> Result<Option<String>, ArchError> {
        match self.find(names) {
            None => Ok(None),
            Some(Found {
                value: Value::String(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(f) => Err(self.wrong(&f, "a string")),
        }
    }

    /// A list (length-capped) whose every entry `convert` accepts; `what` names the list in
    /// errors.
    fn list<T>(
        &self,
        names: &[&str],
        what: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<(String, Vec<T>)>, ArchError> {
        let Some(f) = self.find(names) else {
            return Ok(None);
        };
        let Value::Array(items) = f.value else {
            return Err(self.wrong(&f, what));
        };
        if items.len() > MAX_LIST_LEN {
            let at_most =
                what.replacen("a list of", &format!("a list of at most {MAX_LIST_LEN}"), 1);
            return Err(self.wrong(&f, &at_most));
        }
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            out.push(convert(v).ok_or_else(|| self.wrong(&f, what))?);
        }
        Ok(Some((f.field, out)))
    }

    /// A list of strings (a `layer_types`-like list), length-capped.
    pub fn strings(&self, names: &[&str]) -> Result<Option<(String, Vec<String>)>, ArchError> {
        self.list(names, "a list of strings", |v| {
            v.as_str().map(str::to_string)
        })
    }

    /// A list of non-negative integers (layer indices, per-layer widths), length-capped.
    pub fn u64s(&self, names: &[&str]) -> Result<Option<(String, Vec<u64>)>, ArchError> {
        self.list(names, "a list of non-negative integers", as_u64)
    }

    /// An integer or a list of integers, one per layer.
    pub fn per_layer(&self, names: &[&str]) -> Result<Option<(String, PerLayer)>, ArchError> {
        match self.find(names) {
            None => Ok(None),
            Some(f) => match f.value {
                Value::Array(_) => {
                    let (field, v) = self.u64s(&[names_of(&f)])?.unwrap_or_default();
                    Ok(Some((field, PerLayer::List(v))))
                }
                v => as_u64(v)
                    .map(|n| Some((f.field.clone(), PerLayer::One(n))))
                    .ok_or_else(|| self.wrong(&f, "an integer or a list of integers")),
            },
        }
    }

    /// A value for a family formula (`arch/expr.rs`): an integer, a boolean as 1 or 0, a list's
    /// length for `len:<key>`, the entries equal to "v" for `count_v:<key>`, whether a key is
    /// set for `has:<key>`, int(1 / ratio) for `inv:<key>`, a value or 0 for
    /// `opt:<key>`, an entry of a list for `<key>.<i>`, or a key of a nested object for
    /// `<object>.<key>` (read with that object's class defaults). None when the config and the
    /// class have no such key.
    pub fn formula_value(&self, name: &str) -> Result<Option<u64>, ArchError> {
        // `f:obj.key`: the function of a nested config's key.
        if let Some((f, key)) = name.split_once(':') {
            if let Some((head, rest)) = key.split_once('.') {
                if self.obj.get(head).is_some_and(Value::is_object)
                    || self.class.and_then(|c| c.sub_config(head)).is_some()
                {
                    return self.formula_value(&format!("{head}.{f}:{rest}"));
                }
            }
        }
        // `has(key)`: 1 when the key is set (not null), else 0; `opt(key)`: its value, 0 when
        // null (modules built only when a key is set).
        if let Some(key) = name.strip_prefix("has:") {
            return Ok(Some(u64::from(self.find(&[key]).is_some())));
        }
        // `inv(key)`: int(1 / value) of a ratio (a pixel shuffle's `downsample_ratio` 0.5 → 2).
        if let Some(key) = name.strip_prefix("inv:") {
            return Ok(self
                .f64(&[key])?
                .filter(|x| *x > 0.0 && *x <= 1.0)
                .map(|x| (1.0 / x + 1e-9) as u64));
        }
        if let Some(key) = name.strip_prefix("opt:") {
            return Ok(Some(match self.find(&[key]) {
                None => 0,
                Some(_) => self.formula_value(key)?.unwrap_or(0),
            }));
        }
        // `count_<value>(key)`: entries of a list equal to "<value>" (layer kinds of a tower).
        if let Some((value, key)) = name
            .strip_prefix("count_")
            .and_then(|rest| rest.split_once(':'))
        {
            return Ok(match self.find(&[key]) {
                Some(f) => match f.value {
                    Value::Array(a) => {
                        Some(a.iter().filter(|x| x.as_str() == Some(value)).count() as u64)
                    }
                    _ => return Err(self.wrong(&f, "a list")),
                },
                None => None,
            });
        }
        if let Some(key) = name.strip_prefix("len:") {
            return Ok(match self.find(&[key]) {
                Some(f) => match f.value {
                    Value::Array(a) => Some(a.len() as u64),
                    _ => return Err(self.wrong(&f, "a list")),
                },
                None => None,
            });
        }
        if let Some((head, rest)) = name.split_once('.') {
            // `key.0.1`: an entry of a list-valued key (kernel sizes given per block).
            if let Some(f) = self.find(&[head]).filter(|f| f.value.is_array()) {
                let mut v = f.value;
                for idx in rest.split('.') {
                    v = idx
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| v.as_array()?.get(i))
                        .ok_or_else(|| {
                            ArchError::field(&f.field, format!("{} has no entry {rest}", f.field))
                        })?;
                }
                return as_u64(v)
                    .map(Some)
                    .ok_or_else(|| self.wrong(&f, "a list of integers"));
            }
            if let Some(nested) = self.nested(head)? {
                return nested.formula_value(rest);
            }
            // A nested config left at its class default.
            return match self.class.and_then(|c| c.sub_config(head)) {
                Some(sub) => Scope::new(
                    super::empty_map(),
                    &format!("{}{head}.", self.path),
                    Some(sub),
                )
                .formula_value(rest),
                None => Ok(None),
            };
        }
        match self.find(&[name]) {
            None => Ok(None),
            Some(f) => match f.value {
                Value::Bool(b) => Ok(Some(u64::from(*b))),
                v => as_u64(v)
                    .map(Some)
                    .ok_or_else(|| self.wrong(&f, "an integer or a boolean")),
            },
        }
    }

    /// A nested config (`vision_config`) as a scope of its own, if present: its path under this
    /// one's, read with the class this scope's class gives that key (`sub_configs`).
    pub fn nested(&self, name: &str) -> Result<Option<Scope<'a>>, ArchError> {
        let sub = self.class.and_then(|c| c.sub_config(name));
        Ok(self
            .object(name)?
            .map(|obj| Scope::new(obj, &self.field(&format!("{name}.")), sub)))
    }

    /// A nested object (`vision_config`), if present.
    pub fn object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, ArchError> {
        self.mark(name);
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(v) => Err(ArchError::field(
                &self.field(name),
                format!(
                    "field '{}' must be an object, found {}",
                    self.field(name),
                    describe_value(v)
                ),
            )),
        }
    }
}

/// The key a found value came from, without its path (for re-reading it).
fn names_of<'f>(f: &'f Found) -> &'f str {
    let key = f.field.rsplit('.').next().unwrap_or(&f.field);
    key.split(' ').next().unwrap_or(key)
}

/// A per-model quantity given once or per layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerLayer {
    One(u64),
    List(Vec<u64>),
}

impl PerLayer {
    /// Layer `i`'s value (a short list repeats its last value).
    pub fn get(&self, i: usize) -> u64 {
        match self {
            PerLayer::One(v) => *v,
            PerLayer::List(vs) => vs.get(i).or(vs.last()).copied().unwrap_or(0),
        }
    }
}

pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            // Accept 4096.0: some writers emit whole numbers as floats.
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64)
        }),
        _ => None,
    }
}

/// "the string \"4096\"", "a list of 3 items", ... for error messages (values shortened).
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
            let more = if s.chars().count() > 40 { "…" } else { "" };
            format!("the string \"{short}{more}\"")
        }
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(_) => "an object".to_string(),
    }
}
