//! The OpenAPI 3 document at `/api/v1/openapi.json`, built from the same field lists the handlers
//! parse with (request.rs: `ESTIMATE`, `PLAN`), so the two cannot drift apart. The response
//! schemas are read off the commands' own answers for small configurations.

use super::request::{self, CommandSpec, FieldKind, CONFIG_FIELD, ESTIMATE, FIT, PLAN};
use super::BODY_LIMIT_BYTES;
use serde_json::{json, Map, Value};

/// Example values for request fields that have no CLI default (the API test sends each); a list
/// field's example is this value alone in an array.
fn example(name: &str) -> Option<Value> {
    Some(match name {
        "model" => json!("llama-3.1-8b"),
        "gpu" => json!("h100"),
        "kv_dtype" => json!("fp8"),
        "quant" => json!("fp8"),
        "rate" => json!(2.0),
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
        "tensor_split" => json!("3,1"),
        "n_cpu_moe" => json!(10),
        "host_memory" => json!("64GiB"),
        "override_tensor" => json!("blk\\.[0-9]+\\.ffn_.*_exps\\.=CPU"),
        "chunked_prefill_size" => json!("4096"),
        "speculative_config" => json!("{\"method\": \"ngram\", \"num_speculative_tokens\": 3}"),
        "interconnect" => json!("nvswitch"),
        "max_lora_rank" => json!(16),
        "speculative_algorithm" => json!("EAGLE"),
        "mamba_cache_mode" => json!("align"),
        "max_mamba_cache_size" => json!(256),
        "mamba_full_memory_ratio" => json!(0.9),
        "mamba_ssm_dtype" => json!("bfloat16"),
        "gpu_memory_in_use" => json!("0.8GiB"),
        _ => return None,
    })
}

/// One value of a field, as a schema.
fn kind_schema(kind: &FieldKind) -> Value {
    match kind {
        FieldKind::Unsigned => json!({"type": "integer", "minimum": 0}),
        FieldKind::Number => json!({"type": "number"}),
        FieldKind::Choice(c) => json!({"type": "string", "enum": c}),
        FieldKind::Text => json!({"type": "string", "maxLength": request::MAX_STRING_CHARS}),
        FieldKind::Switch => json!({"type": "boolean"}),
    }
}

/// The request schema of a command: one property per flag (`extra` adds the API's own fields).
fn request_schema<A: clap::Args>(
    spec: &CommandSpec<A>,
    description: &str,
    extra: &[(&str, Value)],
) -> Value {
    let mut props = Map::new();
    for f in spec.fields() {
        let mut p = if f.list {
            json!({"type": "array", "items": kind_schema(&f.kind), "maxItems": request::MAX_LIST_ITEMS})
        } else {
            kind_schema(&f.kind)
        };
        let o = p.as_object_mut().expect("object literal");
        o.insert("nullable".into(), json!(true));
        o.insert(
            "description".into(),
            json!(format!(
                "{} (CLI: --{}{})",
                f.help,
                f.flag,
                if f.list { ", once per entry" } else { "" }
            )),
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
            let e = if f.list { json!([e]) } else { e };
            o.insert("example".into(), e);
        }
        props.insert(f.name.clone(), p);
    }
    for (name, schema) in extra {
        props.insert(name.to_string(), schema.clone());
    }
    let required: Vec<String> = spec
        .command()
        .get_arguments()
        .filter(|a| a.is_required_set())
        .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
        .collect();
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "description": description,
        "properties": props,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn config_schema() -> Value {
    let uint = |d: &str| json!({"type": "integer", "minimum": 0, "description": d});
    json!({
        "type": "object",
        "additionalProperties": true,
        "description": "A Hugging Face config.json object, read by the same mapping as `vramplan estimate --model config.json` (crates/formats): every layer kind it describes (full, sliding, chunked, latent and KV-sharing attention, Mamba, Gated DeltaNet and other recurrent mixers, hybrids), vision and audio towers, text_config nesting, quantization_config. A field missing from the object takes the default of the configuration class its model_type names (transformers 5.24.0); one it does not understand that can change memory is refused with its name or reported in `warnings`; a field missing without a default, or mistyped, is named as config.<field>.",
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
    if let Some(FieldKind::Choice(engines)) = ESTIMATE.field("engine").map(|f| &f.kind) {
        let default = ESTIMATE.field("engine").and_then(|f| f.default.clone());
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

/// The plan answer's schemas, from real answers: a small search that finds plans, and one that
/// finds none and gives advice (Llama 3.2 1B, 64 × 128K tokens on one T4). `Deployment`,
/// `Advice` and `PlanResult`.
fn plan_schemas() -> Vec<(String, Value)> {
    let first = |body: Value, key: &str| {
        super::api::plan_value(&body)
            .ok()
            .and_then(|v| v[key].get(0).map(schema_of))
            .unwrap_or(json!({"type": "object"}))
    };
    let mut deployment = first(
        json!({"model": ["llama-3.1-8b"], "gpu": ["l4"], "max_gpus": 1}),
        "plans",
    );
    // No price in the catalogue for this GPU kind: null.
    if let Some(c) = deployment["properties"]
        .get_mut("cost_per_hour")
        .and_then(Value::as_object_mut)
    {
        c.insert("nullable".into(), json!(true));
    }
    let advice = first(
        json!({"model": ["llama-3.2-1b"], "gpu": ["t4"], "max_gpus": 1, "context": 131072, "concurrency": 64}),
        "advice",
    );
    let result = json!({
        "type": "object",
        "required": ["plans", "advice", "no_plan", "truncated"],
        "properties": {
            "plans": {"type": "array", "items": {"$ref": "#/components/schemas/Deployment"}, "description": "every deployment found, cheapest first (sizes in bytes, throughput a roofline upper bound, cost in USD per hour)"},
            "advice": {"type": "array", "items": {"$ref": "#/components/schemas/Advice"}, "description": "for each model no deployment serves: the smallest changes that would, each change prefixed with the model id (may be empty)"},
            "no_plan": {"type": "array", "items": {"type": "object", "required": ["model", "reason"], "properties": {"model": {"type": "string"}, "reason": {"type": "string"}}}, "description": "the models given that no deployment in the search space serves, each with the reason"},
            "truncated": {"type": "string", "nullable": true, "description": "null when the search covered its whole space; else why it stopped early (its time budget spent, the request cancelled) and after how many candidates: `plans` holds what was found until then"}
        }
    });
    vec![
        ("Deployment".into(), deployment),
        ("Advice".into(), advice),
        ("PlanResult".into(), result),
    ]
}

/// The 400 / 403 / 408 / 413 / 415 / 500 answers every POST endpoint shares.
fn error_responses(responses: &mut Value, what: &str) {
    let r = responses.as_object_mut().expect("object literal");
    r.insert("400".into(), error_response("malformed JSON, an unknown field, a wrong type, an out-of-range value or a pasted object that is not a config.json; `field` names the culprit"));
    r.insert(
        "413".into(),
        error_response(&format!("body over {BODY_LIMIT_BYTES} bytes")),
    );
    r.insert(
        "403".into(),
        error_response("the Host header is not this server's (IP addresses and localhost are; other names only with `vramplan serve --allowed-host NAME`)"),
    );
    r.insert(
        "408".into(),
        error_response("the body did not arrive within the server's body timeout"),
    );
    r.insert(
        "415".into(),
        error_response("the body was not sent as Content-Type: application/json"),
    );
    r.insert(
        "500".into(),
        error_response(&format!(
            "a defect in the {what} (the server keeps serving)"
        )),
    );
}

fn request_body(schema: &str) -> Value {
    json!({
        "required": true,
        "description": format!("At most {BODY_LIMIT_BYTES} bytes ({} KiB).", BODY_LIMIT_BYTES / 1024),
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
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
    error_responses(&mut estimate_responses, "estimator");
    let mut plan_responses = json_ok(
        "the plans, exactly as `vramplan plan --json` prints them for the same flags",
        json!({"$ref": "#/components/schemas/PlanResult"}),
    );
    error_responses(&mut plan_responses, "planner");
    plan_responses.as_object_mut().expect("object literal").insert(
        "503".into(),
        error_response(&format!(
            "{} plan searches are already running (each takes a core for ~0.1 s); retry after the Retry-After seconds",
            super::api::MAX_PLANS_RUNNING
        )),
    );
    let mut fit_responses = json_ok(
        "the answer, exactly as `vramplan fit --no-local --json` prints it for the same flags: {hardware, context, concurrency, models: [{model, source, family, params, engine, fits, offload, quant, kv_dtype, tp, pp, memory_per_gpu_bytes, host_bytes, gpu_layers, model_layers, max_context, max_concurrency, reason}], notes}",
        json!({"type": "object", "required": ["hardware", "context", "concurrency", "models", "notes"]}),
    );
    error_responses(&mut fit_responses, "fit search");
    let mut components = Map::new();
    for (name, schema) in schemas.into_iter().chain(plan_schemas()) {
        components.insert(name, schema);
    }
    components.insert(
        "EstimateRequest".into(),
        request_schema(
            &ESTIMATE,
            "Each field is the `vramplan estimate` flag of the same name (`kv_dtype` is `--kv-dtype`), with the CLI's defaults and validation. A null field is the same as an absent one. Give `model` or `config` (a pasted config.json), not both. `model` is a catalogue id or alias, or — unless the server runs with `--no-hub` — a Hugging Face repository `ORG/NAME[@REVISION][:GGUF_TAG]`, read server-side by its headers from the server's configured endpoint only (never a path, a local store or another registry), with a time limit (`serve --hub-timeout`) and at most 4 such reads at once (503 beyond).",
            &[(CONFIG_FIELD, json!({"$ref": "#/components/schemas/HfConfig"}))],
        ),
    );
    components.insert(
        "PlanRequest".into(),
        request_schema(
            &PLAN,
            "Each field is the `vramplan plan` flag of the same name (`max_gpus` is `--max-gpus`), with the CLI's defaults and validation; a flag the CLI takes several times (model, gpu, quant, kv_dtype) is an array, one entry per flag, and an empty array is the flag not given. A null field is the same as an absent one. Models are catalogue ids or aliases. `top` only trims the CLI's table: like `--json`, the API returns every plan.",
            &[],
        ),
    );
    components.insert(
        "FitRequest".into(),
        request_schema(
            &FIT,
            "Each field is the `vramplan fit` flag of the same name (`min_params` is `--min-params`), with the CLI's defaults and validation; `engine` is an array, one entry per flag. `gpu` is required: the server detects no GPUs and reads no local model store, so the answer covers the catalogue.",
            &[],
        ),
    );
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
            "description": "GPU memory estimates and deployment plans for LLM serving: the same numbers as the vramplan CLI. Sizes are bytes (integers); every request is independent and nothing is stored."
        },
        "paths": {
            "/api/v1/models": {"get": {"summary": "List the model catalogue", "responses": models}},
            "/api/v1/gpus": {"get": {"summary": "List the GPU catalogue", "responses": gpus}},
            "/api/v1/estimate": {"post": {
                "summary": "Estimate one configuration",
                "requestBody": request_body("EstimateRequest"),
                "responses": estimate_responses
            }},
            "/api/v1/plan": {"post": {
                "summary": "The cheapest deployments that serve a workload, or the changes that would make one",
                "requestBody": request_body("PlanRequest"),
                "responses": plan_responses
            }},
            "/api/v1/fit": {"post": {
                "summary": "The catalogue models that run on gpus × gpu: best weights and KV dtype, max context and sequences, or why not",
                "requestBody": request_body("FitRequest"),
                "responses": fit_responses
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3 document"}}}}
        },
        "components": {"schemas": components}
    })
}
