//! transformers' configuration classes as data (`data/transformers/config_classes.json`,
//! written by `scripts/arch/config_classes.py` from the pinned release): each class's field
//! defaults, alternative attribute names and nested config classes, keyed by `model_type`.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::OnceLock;

const FILE: &str = include_str!("../../data/transformers/config_classes.json");

#[derive(Debug, Deserialize)]
struct Doc {
    transformers_version: String,
    classes: HashMap<String, RawClass>,
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
    classes: HashMap<String, ConfigClass>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        // Compiled in and checked by the tests: a failure here is a build defect.
        let doc: Doc = serde_json::from_str(FILE).expect("config_classes.json parses");
        Table {
            version: doc.transformers_version,
            classes: doc
                .classes
                .into_iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        ConfigClass {
                            model_type: k,
                            class_name: c.class,
                            module: c.module,
                            defaults: c.defaults,
                            attribute_map: c.attribute_map,
                            sub_configs: c.sub_configs,
                        },
                    )
                })
                .collect(),
        }
    })
}

/// The configuration class of `model_type`, if transformers has one.
pub fn class(model_type: &str) -> Option<&'static ConfigClass> {
    table().classes.get(model_type)
}

/// The transformers release the table was read from.
pub fn transformers_version() -> &'static str {
    &table().version
}
