//! transformers' configuration classes as data (`data/transformers/config_classes.json`,
//! written by `scripts/arch/config_classes.py` from the pinned release): each class's field
//! defaults, alternative attribute names and nested config classes, keyed by `model_type`.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

const FILE: &str = include_str!("../../data/transformers/config_classes.json");

#[derive(Debug, Deserialize)]
struct Doc<'a> {
    transformers_version: String,
    /// Each class's JSON, parsed when that class is first asked for: a command describes one
    /// or a few models, and parsing all ~400 classes of the 357 KB file was 14 M instructions
    /// of a 47 M-instruction `estimate` (callgrind).
    #[serde(borrow)]
    classes: HashMap<String, &'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct RawClass {
    class: String,
    module: String,
    #[serde(default)]
    defaults: Map<String, Value>,
    #[serde(default)]
    attribute_map: HashMap<String, String>,
    #[serde(default)]
    sub_configs: HashMap<String, String>,
}

/// One configuration class.
#[derive(Debug)]
pub struct ConfigClass {
    pub model_type: String,
    pub class_name: String,
    /// e.g. "models.gemma3.configuration_gemma3".
    pub module: String,
    defaults: Map<String, Value>,
    attribute_map: HashMap<String, String>,
    sub_configs: HashMap<String, String>,
}

impl ConfigClass {
    /// The class's own name for a standard attribute (`hidden_size` → `n_embd` for GPT-2).
    pub fn alias_of(&self, name: &str) -> Option<&str> {
        self.attribute_map.get(name).map(String::as_str)
    }

    /// The class default of `name` (under its own name or its alias).
    pub fn default(&self, name: &str) -> Option<&Value> {
        self.defaults
            .get(name)
            .or_else(|| self.alias_of(name).and_then(|a| self.defaults.get(a)))
            .filter(|v| !v.is_null())
    }

    /// Whether the class nests other configs (a multimodal composite such as Qwen3VLConfig).
    pub fn is_composite(&self) -> bool {
        !self.sub_configs.is_empty()
    }

    /// The model_type of a nested config's default class (`text_config` → "gemma3_text").
    pub fn sub_config(&self, key: &str) -> Option<&str> {
        self.sub_configs.get(key).map(String::as_str)
    }
}

struct Table {
    version: String,
    classes: HashMap<String, (&'static RawValue, OnceLock<ConfigClass>)>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        // Compiled in and checked by the tests (`every_class_parses`): a failure here is a
        // build defect.
        let doc: Doc<'static> = serde_json::from_str(FILE).expect("config_classes.json parses");
        Table {
            version: doc.transformers_version,
            classes: doc
                .classes
                .into_iter()
                .map(|(k, raw)| (k, (raw, OnceLock::new())))
                .collect(),
        }
    })
}

fn parse_class(model_type: &str, raw: &RawValue) -> Result<ConfigClass, serde_json::Error> {
    let c: RawClass = serde_json::from_str(raw.get())?;
    Ok(ConfigClass {
        model_type: model_type.to_string(),
        class_name: c.class,
        module: c.module,
        defaults: c.defaults,
        attribute_map: c.attribute_map,
        sub_configs: c.sub_configs,
    })
}

/// The configuration class of `model_type`, if transformers has one.
pub fn class(model_type: &str) -> Option<&'static ConfigClass> {
    let (key, (raw, cell)) = table().classes.get_key_value(model_type)?;
    Some(cell.get_or_init(|| {
        parse_class(key, raw).unwrap_or_else(|e| panic!("config_classes.json, {key}: {e}"))
    }))
}

/// The transformers release the table was read from.
pub fn transformers_version() -> &'static str {
    &table().version
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class parses (they are parsed on first use, so a bad one would otherwise only
    /// show when a model of its type is described).
    #[test]
    fn every_class_parses() {
        let t = table();
        assert!(t.classes.len() > 300, "{} classes", t.classes.len());
        for (k, (raw, _)) in &t.classes {
            let c = parse_class(k, raw).unwrap_or_else(|e| panic!("{k}: {e}"));
            assert_eq!(&c.model_type, k);
            assert!(!c.class_name.is_empty(), "{k}");
        }
        // LlamaConfig's defaults, as transformers 5.24 declares them.
        let llama = class("llama").unwrap();
        assert_eq!(llama.class_name, "LlamaConfig");
        assert_eq!(llama.default("hidden_size"), Some(&Value::from(4096)));
    }
}
