//! The OpenAPI 3 document at `/api/v1/openapi.json`, built from the same field list the handler
//! parses with (request.rs), so the two cannot drift apart. The response schemas are read off the
//! estimator's own answers for the default configuration.

use super::request::{self, FieldKind, CONFIG_FIELD};
use super::BODY_LIMIT_BYTES;
use serde_json::{json, Map, Value};

/// Example values for request fields that have no CLI default (the API test sends each).
fn example(name: &str) -> Option<Value> {
    Some(match name {
        "model" => json!("llama-3.1-8b"),
        "quant" => json!("fp8"),
        "gpu_memory" => json!("24GiB"),
        "gpus" => json!(2),
        "tp" => json!(2),
        "dtype" => json!("bfloat16"),
        "block_size" => json!(16),
        "max_num_seqs" => json!(256),
        "max_num_batched_tokens" => json!(8192),
        "mem_fraction_static" => json!(0.85),
        "n_gpu_layers" => json!(33),
        "parallel" => json!(2),
        "cache_type_k" | "cache_type_v" => json!("q8_0"),
        "flash_attn" => json!("on"),
        "ubatch_size" => json!(512),
        "batch_size" => json!(2048),
        _ => return None,
    })
}

fn request_schema() -> Value {
    let mut props = Map::new();
    for f in request::fields() {
        let mut p = match &f.kind {
            FieldKind::Unsigned => json!({"type": "integer", "minimum": 0}),
            FieldKind::Number => json!({"type": "number"}),
            FieldKind::Choice(c) => json!({"type": "string", "enum": c}),
            FieldKind::Text => json!({"type": "string", "maxLength": request::MAX_STRING_CHARS}),
            FieldKind::Switch => json!({"type": "boolean"}),
        };
        let o = p.as_object_mut().expect("object literal");
        o.insert("nullable".into(), json!(true));
        o.insert(
            "description".into(),
            json!(format!("{} (CLI: --{})", f.help, f.flag)),
        );
        if let Some(d) = &f.default {
            let typed = match f.kind {
                FieldKind::Unsigned => d.parse::<u64>().map(Value::from).unwrap_or(json!(d)),
                FieldKind::Number => d.parse::<f64>().map(Value::from).unwrap_or(json!(d)),
                FieldKind::Switch => json!(d == "true"),
                _ => json!(d),
            };
            o.insert("default".into(), typed.clone());
            o.insert("example".into(), typed);
        }
        if let Some(e) = example(&f.name) {
            o.insert("example".into(), e);
        }
        props.insert(f.name.clone(), p);
    }
    props.insert(
        CONFIG_FIELD.into(),
        json!({"$ref": "#/components/schemas/HfConfig"}),
    );
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Each field is the `vramplan estimate` flag of the same name (`kv_dtype` is `--kv-dtype`), with the CLI's defaults and validation. A null field is the same as an absent one. Give `model` (a catalogue id or alias) or `config` (a pasted config.json), not both.",
        "properties": props,
    })
}

fn config_schema() -> Value {
    let uint = |d: &str| json!({"type": "integer", "minimum": 0, "description": d});
    json!({
        "type": "object",
        "additionalProperties": true,
        "description": "A Hugging Face config.json object for a Llama-style decoder (gated MLP, RMSNorm, rotary positions). Other keys are ignored; configs with latent attention, Mamba layers, vision towers or shared experts are refused with the field that shows them.",
        "required": ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "max_position_embeddings"],
        "properties": {
            "num_hidden_layers": uint("decoder layers"),
            "hidden_size": uint("model width"),
            "num_attention_heads": uint("query heads"),
            "num_key_value_heads": uint("KV heads (default: num_attention_heads)"),
            "head_dim": uint("per-head width (default: hidden_size / num_attention_heads)"),
            "intermediate_size": uint("MLP width (each expert's, with num_local_experts)"),
            "vocab_size": uint("vocabulary rows of the embedding and head"),
            "max_position_embeddings": uint("the model's context limit"),
            "tie_word_embeddings": {"type": "boolean", "description": "head shares the embedding (default false)"},
            "torch_dtype": {"type": "string", "enum": ["bfloat16", "float16", "float32"], "description": "released weight dtype (default bfloat16); `dtype` is read too"},
            "sliding_window": uint("window of local-attention layers"),
            "use_sliding_window": {"type": "boolean"},
            "layer_types": {"type": "array", "items": {"type": "string", "enum": ["sliding_attention", "full_attention"]}},
            "num_local_experts": uint("Mixtral-style experts, each of intermediate_size"),
            "num_experts_per_tok": uint("experts routed per token"),
            "attention_bias": {"type": "boolean"},
            "mlp_bias": {"type": "boolean"},
            "model_type": {"type": "string"},
            "quantization_config": {"type": "object", "description": "quant_method awq, gptq, fp8, mxfp4 or bitsandbytes sets the default weight format"}
        }
    })
}

/// A schema describing `v`'s shape (types of each key), for the response documentation.
fn schema_of(v: &Value) -> Value {
    match v {
        Value::Null => json!({"nullable": true}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_u64() || n.is_i64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Array(a) => {
            json!({"type": "array", "items": a.first().map(schema_of).unwrap_or(json!({}))})
        }
        Value::Object(o) => {
            let props: Map<String, Value> =
                o.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect();
            json!({"type": "object", "properties": props, "required": o.keys().collect::<Vec<_>>()})
        }
    }
}

/// The response schema of an estimate, from a real answer. Fields the estimator may leave null
/// (fewest GPUs over 64; a ratio over zero KV bytes) are marked so.
fn sample_schema(body: Value) -> Value {
    let mut s = match super::api::estimate_value(&body) {
        Ok(v) => schema_of(&v),
        Err(_) => json!({"type": "object"}),
    };
    if let Some(p) = s.get_mut("properties").and_then(Value::as_object_mut) {
        if let Some(m) = p.get_mut("min_gpus").and_then(Value::as_object_mut) {
            m.insert("nullable".into(), json!(true));
        }
    }
    s
}

fn error_response(what: &str) -> Value {
    json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn json_ok(what: &str, schema: Value) -> Value {
    json!({"200": {"description": what, "content": {"application/json": {"schema": schema}}}})
}

/// Response schemas: the generic estimate, one per engine profile (each adds its own fields), and
/// the naive formula's. Names are `Estimate`, `Estimate_<engine>` and `NaiveEstimate`.
fn response_schemas() -> Vec<(String, Value)> {
    let mut out = vec![("Estimate".to_string(), sample_schema(json!({})))];
    if let Some(FieldKind::Choice(engines)) = request::field("engine").map(|f| &f.kind) {
        let default = request::field("engine").and_then(|f| f.default.clone());
        for e in engines.iter().filter(|e| Some(*e) != default.as_ref()) {
            out.push((
                format!("Estimate_{e}"),
                sample_schema(json!({ "engine": e })),
            ));
        }
    }
    out.push((
        "NaiveEstimate".to_string(),
        sample_schema(json!({"formula": "naive"})),
    ));
    out
}

pub fn document() -> Value {
    let schemas = response_schemas();
    let one_of: Vec<Value> = schemas
        .iter()
        .map(|(name, _)| json!({"$ref": format!("#/components/schemas/{name}")}))
        .collect();
    let models = json_ok(
        "the model catalogue, as `vramplan models --json`",
        json!({"type": "array", "items": schema_of(&super::api::models_value()[0])}),
    );
    let gpus_value = serde_json::to_value(&vramplan_core::catalogue().gpus).unwrap_or(Value::Null);
    let gpus = json_ok(
        "the GPU catalogue, as `vramplan gpus --json`",
        json!({"type": "array", "items": schema_of(&gpus_value[0])}),
    );
    let mut estimate_responses = json_ok(
        "the estimate, exactly as `vramplan estimate --json` prints it for the same flags: Estimate for the generic engine, Estimate_<engine> for an engine profile, NaiveEstimate with formula = naive",
        json!({ "oneOf": one_of }),
    );
    let r = estimate_responses.as_object_mut().expect("object literal");
    r.insert("400".into(), error_response("malformed JSON, an unknown field, a wrong type, an out-of-range value or a pasted object that is not a config.json; `field` names the culprit"));
    r.insert(
        "413".into(),
        error_response(&format!("body over {BODY_LIMIT_BYTES} bytes")),
    );
    r.insert(
        "500".into(),
        error_response("a defect in the estimator (the server keeps serving)"),
    );
    let mut components = Map::new();
    for (name, schema) in schemas {
        components.insert(name, schema);
    }
    components.insert("EstimateRequest".into(), request_schema());
    components.insert("HfConfig".into(), config_schema());
    components.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error", "field"],
            "properties": {
                "error": {"type": "string", "description": "one line, in the CLI's words"},
                "field": {"type": "string", "nullable": true, "description": "the request field at fault (config.<key> inside a pasted config), null when none"}
            }
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "vramplan",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "GPU memory estimates for LLM serving: the same numbers as the vramplan CLI. Sizes are bytes (integers); every request is independent and nothing is stored."
        },
        "paths": {
            "/api/v1/models": {"get": {"summary": "List the model catalogue", "responses": models}},
            "/api/v1/gpus": {"get": {"summary": "List the GPU catalogue", "responses": gpus}},
            "/api/v1/estimate": {"post": {
                "summary": "Estimate one configuration",
                "requestBody": {
                    "required": true,
                    "description": format!("At most {BODY_LIMIT_BYTES} bytes ({} KiB).", BODY_LIMIT_BYTES / 1024),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EstimateRequest"}}}
                },
                "responses": estimate_responses
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3 document"}}}}
        },
        "components": {"schemas": components}
    })
}
